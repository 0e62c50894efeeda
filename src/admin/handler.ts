import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { isBigintId, isStorableDate } from '../core/limits.ts';
import type { Principal } from './auth.ts';

/**
 * Wraps an async admin route: the principal is guaranteed, a thrown DomainError reaches the
 * app's error handler, and invalid input (zod) answers 400 naming each bad field.
 */
export function route(fn: (req: Request, res: Response, principal: Principal) => Promise<void>): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    fn(req, res, req.principal!).catch((error: unknown) => {
      if (error instanceof z.ZodError) {
        res.status(400).json({
          error: 'invalid',
          message: error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
          details: { issues: error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
        });
        return;
      }
      next(error);
    });
  };
}

/** route() for a CSV upload: the file is the body, read as text by the admin router; any other body answers 415. */
export function csvRoute(
  fn: (req: Request, res: Response, principal: Principal, csv: string) => Promise<void>,
): RequestHandler {
  return route(async (req, res, principal) => {
    if (typeof req.body !== 'string') {
      res.status(415).json({ error: 'invalid', message: 'send the CSV file as the body with content-type text/csv' });
      return;
    }
    await fn(req, res, principal, req.body);
  });
}

/** The id of a row in a bigint identity column (a delivery, an event, a log entry), as a cursor or in a list. */
export const rowId = (what: string) => z.string().refine(isBigintId, `must be ${what} id (at most 2^63 - 1)`);

/** A date PostgreSQL can hold (core/limits.ts). */
export const storableDate = z.coerce.date().refine(isStorableDate, 'must be in the years 1 to 9999');

import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
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

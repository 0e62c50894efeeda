import crypto from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id: the caller's X-Request-Id when sane, else a new UUID; echoed in the response. */
    id: string;
  }
}

/** Gives the request its id (the caller's X-Request-Id when sane, else a new UUID) and echoes it. */
export function assignRequestId(req: Request, res: Response): void {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  req.id = id;
  res.setHeader('x-request-id', id);
}

export const requestId: RequestHandler = (req, res, next) => {
  assignRequestId(req, res);
  next();
};

import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Express 4 ignores the promise an async handler returns, so a rejection would go unhandled.
 * This wrapper hands it to `next` (the app's error handler) instead.
 */
export function asyncHandler(fn: (req: Request, res: Response, next: NextFunction) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    fn(req, res, next).catch(next);
  };
}

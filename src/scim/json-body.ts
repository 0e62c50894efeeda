import express, { type Request, type RequestHandler, type Response } from 'express';

/** The media types a SCIM body may be sent as. */
export const JSON_TYPES = ['application/scim+json', 'application/json'];

/** express.json as the SCIM routes use it. */
export const jsonParser = (limit: string | number): RequestHandler => express.json({ type: JSON_TYPES, limit });

/**
 * The JSON body of a request to one of orgsync's own SCIM operations. The shape IdPs send (a
 * JSON media type, UTF-8, no content coding) is read here, without body-parser's generic
 * machinery, answering exactly what express.json with the same options would: an empty body or
 * another media type is `{}`; the top level must be an object or an array (strict); errors carry
 * body-parser's `type` and status (`entity.too.large` 413, `entity.parse.failed` 400), after the
 * rest of the body has been read off. Any other body (compressed, another charset) goes to
 * express.json itself.
 */
export function readJsonBody(req: Request, res: Response, limit: number, parser: RequestHandler): Promise<unknown> {
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    return Promise.resolve({});
  }
  if (!plainJson(req)) {
    return new Promise((resolve, reject) =>
      // body-parser fails with http-errors' Errors.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      parser(req, res, (error?: unknown) => (error ? reject(error) : resolve(req.body))),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let failure: BodyError | undefined;
    const fail = (error: BodyError) => {
      failure ??= error;
      chunks.length = 0;
    };
    if (Number(req.headers['content-length']) > limit)
      fail(bodyError(413, 'request entity too large', 'entity.too.large'));
    req.on('data', (chunk: Buffer) => {
      if (failure) return;
      received += chunk.length;
      if (received > limit) fail(bodyError(413, 'request entity too large', 'entity.too.large'));
      else chunks.push(chunk);
    });
    req.on('aborted', () => fail(bodyError(400, 'request aborted', 'request.aborted')));
    req.on('error', (error) => fail(bodyError(400, error.message, 'request.aborted')));
    req.on('close', () => (failure ? reject(failure) : undefined));
    req.on('end', () => {
      if (failure) return reject(failure);
      try {
        resolve(parseStrict(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(bodyError(400, 'the request body is not valid JSON', 'entity.parse.failed'));
      }
    });
  });
}

type BodyError = Error & { status: number; type: string };

function bodyError(status: number, message: string, type: string): BodyError {
  return Object.assign(new Error(message), { status, type });
}

const PLAIN_CONTENT_TYPE = /^\s*application\/(?:scim\+)?json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** A JSON media type in UTF-8 (or without a charset), without a content coding. */
function plainJson(req: Request): boolean {
  const coding = req.headers['content-encoding'];
  if (coding !== undefined && coding.toLowerCase() !== 'identity') return false;
  const type = req.headers['content-type'];
  return type !== undefined && PLAIN_CONTENT_TYPE.test(type);
}

/** body-parser's strict JSON: nothing (`{}`), or an object or array; a byte order mark is dropped. */
function parseStrict(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) return {};
  const first = /^[ \t\n\r]*([^ \t\n\r])/.exec(body)?.[1];
  if (first !== '{' && first !== '[') throw new SyntaxError('not an object or array');
  return JSON.parse(body);
}

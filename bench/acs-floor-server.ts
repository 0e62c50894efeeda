// The floor under the ACS's refusal of junk on this machine (bench/acs.ts, BENCH_ACS_FLOOR=1):
// a server that reads the form, decodes and parses the SAMLResponse as orgsync does
// (readResponse: the DOCTYPE and depth checks, then xmldom) and answers 403 with a short page.
// No organization, no database, no attempt log. `bare` is Node's HTTP server alone; `express` is
// express with its urlencoded parser and the SSO error page, as orgsync's ACS uses them.
//
//   node --import tsx bench/acs-floor-server.ts bare|express PORT
import http from 'node:http';
import querystring from 'node:querystring';
import express from 'express';
import { sendSsoErrorPage } from '../src/saml/pages.ts';
import { decodeSamlResponse, readResponse } from '../src/saml/validate-response.ts';

const [kind, port] = [process.argv[2], Number(process.argv[3])];
const refusal = {
  title: 'Single sign-on failed',
  message: 'neither the response nor the assertion is signed',
  reason: 'signature_missing',
};
const page = `<!doctype html><title>${refusal.title}</title><p>${refusal.message}</p>`;

/** What orgsync does with a junk post before it looks anything up: decode and parse it. */
function read(value: unknown): void {
  try {
    readResponse(decodeSamlResponse(value));
  } catch {
    // a refusal like any other: answered below
  }
}

const bare = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    read(querystring.parse(Buffer.concat(chunks).toString('utf8')).SAMLResponse);
    res.writeHead(403, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) });
    res.end(page);
  });
});

const app = express();
app.set('etag', false);
app.post('/saml/:org/acs', express.urlencoded({ extended: false }), (req, res) => {
  read((req.body as Record<string, unknown>).SAMLResponse);
  sendSsoErrorPage(res, 403, refusal);
});

(kind === 'bare' ? bare : http.createServer(app)).listen(port, '127.0.0.1', () => console.log('listening'));

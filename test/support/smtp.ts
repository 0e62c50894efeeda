import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

/** A real SMTP server on loopback that keeps every message it accepts. */
export async function startSmtpServer() {
  const messages: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (d) => (raw += d));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
        });
        callback();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.server.address() as AddressInfo;
  return { url: `smtp://127.0.0.1:${port}`, messages, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** The decoded text/plain and text/html parts of a received message (quoted-printable or base64). */
export function mailParts(raw: string): { text?: string; html?: string } {
  const parts: { text?: string; html?: string } = {};
  for (const part of raw.split(/\r?\n--[^\r\n]+\r?\n/)) {
    const type = /content-type:\s*text\/(plain|html)/i.exec(part)?.[1]?.toLowerCase();
    if (!type) continue;
    const [headers, ...rest] = part.split(/\r?\n\r?\n/);
    const body = rest.join('\n\n').replace(/\r?\n--[^\r\n]+--\s*$/, '');
    const encoding = /content-transfer-encoding:\s*(\S+)/i.exec(headers!)?.[1]?.toLowerCase();
    const decoded =
      encoding === 'base64'
        ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
        : encoding === 'quoted-printable'
          ? Buffer.from(
              body
                .replace(/=\r?\n/g, '')
                .replace(/=([0-9A-F]{2})/gi, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
              'latin1',
            ).toString('utf8')
          : body;
    parts[type === 'plain' ? 'text' : 'html'] = decoded.replace(/\r\n/g, '\n');
  }
  return parts;
}

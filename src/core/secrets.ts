import crypto from 'node:crypto';

export type SecretKind = 'scim' | 'admin' | 'invite' | 'session' | 'webhook';

const PREFIX: Record<SecretKind, string> = {
  scim: 'osscim',
  admin: 'oskey',
  invite: 'osinv',
  session: 'osses',
  webhook: 'oswhsec',
};

/** A new random secret (256 bits), prefixed so leaked ones are recognisable by secret scanners. */
export function generateSecret(kind: SecretKind): string {
  return `${PREFIX[kind]}_${crypto.randomBytes(32).toString('base64url')}`;
}

/**
 * Keyed hash of a secret for storage and lookup. The secrets are 256-bit random values, so a slow
 * password hash would add nothing; the server secret as HMAC key means a copy of the database
 * alone does not let anyone check guesses offline.
 */
export function hashSecret(secret: string, serverSecret: string): string {
  return crypto.createHmac('sha256', serverSecret).update(secret).digest('base64url');
}

/** The part of a secret safe to show in listings: its prefix and last four characters. */
export function secretHint(secret: string): string {
  const prefix = secret.split('_', 1)[0] ?? '';
  return `${prefix}_…${secret.slice(-4)}`;
}

/**
 * Encrypts a secret that must travel through durable storage before it is used once (an
 * invitation token waiting in the outbox for its email). AES-256-GCM under a key derived from the
 * server secret; the result is opaque text.
 */
export function sealSecret(plain: string, serverSecret: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', sealingKey(serverSecret), iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

export function openSealedSecret(sealed: string, serverSecret: string): string {
  const raw = Buffer.from(sealed, 'base64url');
  const decipher = crypto.createDecipheriv('aes-256-gcm', sealingKey(serverSecret), raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}

function sealingKey(serverSecret: string): Buffer {
  return crypto.createHmac('sha256', serverSecret).update('orgsync sealing key v1').digest();
}

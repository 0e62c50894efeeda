import crypto from 'node:crypto';

export type SecretKind = 'scim' | 'admin' | 'invite' | 'session';

const PREFIX: Record<SecretKind, string> = {
  scim: 'osscim',
  admin: 'oskey',
  invite: 'osinv',
  session: 'osses',
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

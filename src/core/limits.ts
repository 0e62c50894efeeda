/**
 * What PostgreSQL can store, and the sizes the columns and their indexes allow. The edge adapters
 * refuse anything else with a 4xx before it reaches a query (a database error would be a 500).
 * The README's "Input limits" lists them.
 */

/** `scim_users.user_name` (its check constraint). */
export const MAX_USER_NAME = 512;
/**
 * A user's or group's `externalId`. Both are indexed, and a B-tree entry holds at most about
 * 2,700 bytes: 512 characters of up to 4 bytes each fit.
 */
export const MAX_EXTERNAL_ID = 512;
/** An email address (`accounts.email`); every SCIM email value is indexed too. */
export const MAX_EMAIL = 320;
/** How deep a JSON body may nest; real SCIM and admin documents need fewer than ten levels. */
export const MAX_JSON_DEPTH = 32;

/** A NUL character or half of a surrogate pair: text PostgreSQL (text and jsonb) cannot hold. */
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}

const MAX_BIGINT = 2n ** 63n - 1n;

/** A row id of a bigint identity column (deliveries, events, audit entries, log entries), as text. */
export function isBigintId(text: string): boolean {
  return /^\d{1,19}$/.test(text) && BigInt(text) <= MAX_BIGINT;
}

const FIRST_DAY = Date.parse('0001-01-01T00:00:00Z');
const AFTER_LAST_DAY = Date.parse('+010000-01-01T00:00:00Z');

/**
 * Years 1 to 9999: what RFC 3339 can write and PostgreSQL reads back (it has no year 0, and the
 * client sends dates as ISO text, which has no plain form for years past 9999).
 */
export function isStorableDate(date: Date): boolean {
  const time = date.getTime();
  return time >= FIRST_DAY && time < AFTER_LAST_DAY;
}

import { z } from 'zod';
import type { Db, Fragment } from '../storage/database.ts';
import { invalid } from './errors.ts';

export interface Account {
  id: string;
  email: string;
  givenName: string | null;
  familyName: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const emailSchema = z.email();

/** Trims an address and checks its form; identity comparisons are case-insensitive in SQL. */
export function normalizeEmail(raw: string): string {
  const email = raw.trim();
  if (email.length > 320 || !emailSchema.safeParse(email).success)
    throw invalid(`invalid email address: ${JSON.stringify(raw)}`, { email: raw });
  return email;
}

export function isValidEmail(raw: string): boolean {
  const email = raw.trim();
  return email.length <= 320 && emailSchema.safeParse(email).success;
}

export async function findAccountByEmail(db: Db, email: string): Promise<Account | null> {
  const [row] = await db<Account[]>`select * from accounts where lower(email) = lower(${email.trim()})`;
  return row ?? null;
}

export async function getAccount(db: Db, id: string): Promise<Account | null> {
  const [row] = await db<Account[]>`select * from accounts where id = ${id}`;
  return row ?? null;
}

/**
 * Replaces a person's name with what an authoritative source says (a SAML connection set to
 * update profiles); a missing part is left as it is. Answers the account as it now is.
 */
export async function updateAccountName(
  db: Db,
  id: string,
  names: { givenName: string | null; familyName: string | null },
): Promise<Account> {
  const [row] = await db<Account[]>`
    update accounts set
      given_name = coalesce(${names.givenName}, given_name),
      family_name = coalesce(${names.familyName}, family_name),
      updated_at = now()
    where id = ${id}
    returning *`;
  return row!;
}

/**
 * The account for an email, created if new. Names fill in only what the account lacks: the
 * account is shared across organizations, and one organization's IdP must not rename a person
 * for every other organization.
 */
export async function ensureAccount(
  db: Db,
  input: { email: string; givenName?: string | null; familyName?: string | null },
): Promise<Account> {
  const [row] = await db<Account[]>`${accountUpsert(db, input)}`;
  return row!;
}

/**
 * ensureAccount's statement, to run alone or as a step of a larger one (returns the account row).
 * `after`: a step of that statement to read before the upsert writes (a lock it takes first).
 */
export function accountUpsert(
  db: Db,
  input: { email: string; givenName?: string | null; familyName?: string | null },
  after?: Fragment,
): Fragment {
  const email = normalizeEmail(input.email);
  return db`
    insert into accounts (email, given_name, family_name)
    select ${email}, ${input.givenName ?? null}, ${input.familyName ?? null} ${after ? db`from ${after}` : db``}
    on conflict (lower(email)) do update set
      given_name = coalesce(accounts.given_name, excluded.given_name),
      family_name = coalesce(accounts.family_name, excluded.family_name)
    returning *`;
}

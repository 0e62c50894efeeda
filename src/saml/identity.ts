import { isValidEmail } from '../core/accounts.ts';
import type { AttributeMapping } from './connections.ts';
import { refuse } from './refusal.ts';
import type { VerifiedAssertion } from './validate-response.ts';

/**
 * Attribute names tried, in order, when a connection maps nothing: plain names (Okta, Google,
 * Keycloak, SimpleSAMLphp), Entra ID / ADFS claim URIs, and the LDAP OIDs.
 */
export const DEFAULT_ATTRIBUTES: Record<keyof AttributeMapping, string[]> = {
  email: [
    'email',
    'mail',
    'emailAddress',
    'Email',
    'user.email',
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
    'urn:oid:0.9.2342.19200300.100.1.3',
  ],
  firstName: [
    'firstName',
    'givenName',
    'given_name',
    'FirstName',
    'user.firstName',
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname',
    'urn:oid:2.5.4.42',
  ],
  lastName: [
    'lastName',
    'sn',
    'surname',
    'family_name',
    'LastName',
    'user.lastName',
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname',
    'urn:oid:2.5.4.4',
  ],
  groups: [
    'groups',
    'Groups',
    'memberOf',
    'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups',
    'http://schemas.xmlsoap.org/claims/Group',
  ],
};

export interface SamlIdentity {
  nameId: string;
  email: string;
  givenName: string | null;
  familyName: string | null;
  groups: string[];
}

const MAX_GROUPS = 500;
const EMAIL_NAME_ID = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

/**
 * Who signed in, read through the connection's mapping (or the defaults) from the signed assertion.
 * The email is the identity an account is matched on, so it must be unambiguous: every value of
 * every email attribute tried (not just the first found) must be the same address, and agree with
 * an emailAddress-format NameID; otherwise the sign-in is refused (`ambiguous_identity`) rather
 * than letting the order of values pick the account. Names and groups are not identities: the
 * first value is used.
 */
export function identityOf(assertion: VerifiedAssertion, mapping: AttributeMapping): SamlIdentity {
  const namesOf = (key: keyof AttributeMapping) => (mapping[key] ? [mapping[key]] : DEFAULT_ATTRIBUTES[key]);
  const values = (key: keyof AttributeMapping): string[] => {
    for (const name of namesOf(key)) {
      const found = assertion.attributes.get(name);
      if (found && found.length > 0) return found;
    }
    return [];
  };
  const emails = distinctAddresses(namesOf('email').flatMap((name) => assertion.attributes.get(name) ?? []));
  if (emails.length > 1)
    refuse(
      'ambiguous_identity',
      `the assertion carries ${emails.length} different email addresses: ${emails.join(', ')}`,
    );
  // An emailAddress NameID names an address (one that is not an address names nothing to compare).
  const nameIdIsEmail = assertion.nameIdFormat === EMAIL_NAME_ID && isValidEmail(assertion.nameId);
  if (nameIdIsEmail && emails.length === 1 && emails[0]!.toLowerCase() !== assertion.nameId.trim().toLowerCase())
    refuse(
      'ambiguous_identity',
      `the email attribute ${emails[0]} disagrees with the emailAddress NameID ${assertion.nameId}`,
    );
  const email = emails[0] ?? (isValidEmail(assertion.nameId) ? assertion.nameId : null);
  if (!email || !isValidEmail(email)) {
    refuse('no_email', 'the assertion carries no email address (send an email attribute, or an email NameID)');
  }
  const groups = [
    ...new Set(
      values('groups')
        .map((g) => g.trim())
        .filter((g) => g.length > 0 && g.length <= 256),
    ),
  ].slice(0, MAX_GROUPS);
  return {
    nameId: assertion.nameId,
    email: email.trim(),
    givenName: values('firstName')[0] ?? null,
    familyName: values('lastName')[0] ?? null,
    groups,
  };
}

/** Trimmed, without repeats (addresses compare case-insensitively, as accounts do). */
function distinctAddresses(values: string[]): string[] {
  const byKey = new Map<string, string>();
  for (const value of values.map((v) => v.trim()).filter((v) => v !== '')) {
    if (!byKey.has(value.toLowerCase())) byKey.set(value.toLowerCase(), value);
  }
  return [...byKey.values()];
}

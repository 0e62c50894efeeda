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

/** Who signed in, read through the connection's mapping (or the defaults) from the signed assertion. */
export function identityOf(assertion: VerifiedAssertion, mapping: AttributeMapping): SamlIdentity {
  const values = (key: keyof AttributeMapping): string[] => {
    const names = mapping[key] ? [mapping[key]] : DEFAULT_ATTRIBUTES[key];
    for (const name of names) {
      const found = assertion.attributes.get(name);
      if (found && found.length > 0) return found;
    }
    return [];
  };
  const email = values('email')[0] ?? (isValidEmail(assertion.nameId) ? assertion.nameId : null);
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

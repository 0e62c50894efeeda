import type { Permission } from './permissions.ts';

/** Who makes a change and through which door; every audit entry and event records it. */
export type Channel = 'admin' | 'scim' | 'sso' | 'cli' | 'sync' | 'system';

export interface Actor {
  type: 'admin_key' | 'scim_token' | 'account' | 'system';
  /** Credential id, account id, or absent for the system. */
  id?: string;
  /** Human-readable: the token's name, the person's email, "reconciler". */
  name: string;
  channel: Channel;
  /**
   * The permissions of a caller of the admin API (an admin key's roles, a signed-in member's
   * effective roles). Such a caller may grant or take away only roles whose permissions it holds,
   * and may change or remove only members whose permissions it holds (see authority.ts).
   * Absent for system actors (SCIM, SSO, the reconciler, the CLI) and for a person acting on their
   * own invitation: what they do is not limited by a caller's own permissions.
   */
  permissions?: readonly Permission[];
}

export const systemActor = (channel: Channel, name = 'orgsync'): Actor => ({ type: 'system', name, channel });

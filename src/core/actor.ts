/** Who makes a change and through which door; every audit entry and event records it. */
export type Channel = 'admin' | 'scim' | 'sso' | 'cli' | 'sync' | 'system';

export interface Actor {
  type: 'admin_key' | 'scim_token' | 'account' | 'system';
  /** Credential id, account id, or absent for the system. */
  id?: string;
  /** Human-readable: the token's name, the person's email, "reconciler". */
  name: string;
  channel: Channel;
}

export const systemActor = (channel: Channel, name = 'orgsync'): Actor => ({ type: 'system', name, channel });

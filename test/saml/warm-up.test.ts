import { describe, expect, it } from 'vitest';
import { warmUpSignInChecks } from '../../src/saml/warm-up.ts';

describe('the sign-in warm-up', () => {
  it('takes its sample through every check of a sign-in, to the verified assertion', async () => {
    // A sample refused by any check would warm up only the checks before it.
    const verified = await warmUpSignInChecks(3, () => Promise.resolve());
    expect(verified).toMatchObject({
      nameId: 'warm-up@orgsync.invalid',
      assertionId: '_warm_up_assertion',
      issuer: 'https://idp.orgsync.invalid/metadata',
    });
    expect(verified!.attributes.get('email')).toEqual(['warm-up@orgsync.invalid']);
  });

  it('looks for an idle server before every twenty rounds', async () => {
    let looks = 0;
    await warmUpSignInChecks(41, () => Promise.resolve(void looks++));
    expect(looks).toBe(3);
  });
});

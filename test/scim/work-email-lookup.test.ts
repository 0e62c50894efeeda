import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oktaUser, scimFixture } from '../support/scim.ts';

let f: Awaited<ReturnType<typeof scimFixture>>;
beforeAll(async () => {
  f = await scimFixture('work-email-lookup');
});
afterAll(async () => f.ctx.database.close());

describe("Entra ID's lookup by work email", () => {
  it('emails[type eq "work"].value eq matches only a user whose work email is that address', async () => {
    const body = oktaUser('grace@contoso.example', {
      emails: [
        { type: 'work', value: 'grace@contoso.example', primary: true },
        { type: 'home', value: 'grace@home.example' },
      ],
    });
    const { id } = (await f.client.post('/Users', body).expect(201)).body;
    const lookup = async (address: string) =>
      (
        await f.client
          .get(`/Users?filter=${encodeURIComponent(`emails[type eq "work"].value eq "${address}"`)}`)
          .expect(200)
      ).body.Resources.map((u: { id: string }) => u.id);
    expect(await lookup('GRACE@contoso.example')).toEqual([id]);
    // Her home address is one of her emails, but not the work one.
    expect(await lookup('grace@home.example')).toEqual([]);
  });
});

import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'express';
import type { AppContext } from '../../src/context.ts';
import { apiKeyRouter } from '../../src/admin/api-key-routes.ts';
import { auditRouter } from '../../src/admin/audit-routes.ts';
import { groupMappingRouter } from '../../src/admin/group-mapping-routes.ts';
import { groupRouter } from '../../src/admin/group-routes.ts';
import { importExampleRouter, importRouter } from '../../src/admin/import-routes.ts';
import { invitationRouter } from '../../src/admin/invitation-routes.ts';
import { memberRouter } from '../../src/admin/member-routes.ts';
import { organizationRouter } from '../../src/admin/organization-routes.ts';
import { samlAdminRouter } from '../../src/admin/saml-routes.ts';
import { scimTokenRouter } from '../../src/admin/scim-token-routes.ts';
import { syncAdminRouter } from '../../src/admin/sync-routes.ts';
import { createApp } from '../../src/app.ts';
import { createTestContext } from '../support/context.ts';

let ctx: AppContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => ctx.database.close());

/** Every [method, path] a router serves, in OpenAPI path syntax. */
function routesOf(router: Router): string[] {
  return (router.stack as unknown as { route?: { path: string; methods: Record<string, boolean> } }[])
    .filter((layer) => layer.route)
    .flatMap((layer) =>
      Object.keys(layer.route!.methods).map((m) => `${m} ${layer.route!.path.replace(/:(\w+)/g, '{$1}')}`),
    );
}

describe('OpenAPI document', () => {
  it('is served without authentication and describes every admin route', async () => {
    const res = await request(createApp(ctx)).get('/api/openapi.json').expect(200);
    expect(res.body.openapi).toBe('3.1.0');
    expect(res.body.servers).toEqual([{ url: 'https://orgsync.test/api' }]);
    const documented = Object.entries(res.body.paths as Record<string, object>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m} ${path}`),
    );
    const served = [
      organizationRouter,
      memberRouter,
      invitationRouter,
      importRouter,
      importExampleRouter,
      groupRouter,
      groupMappingRouter,
      auditRouter,
      syncAdminRouter,
      scimTokenRouter,
      apiKeyRouter,
    ].flatMap((make) => routesOf(make(ctx)));
    served.push(...routesOf(samlAdminRouter(ctx)).map((route) => route.replace(' ', ' /saml')));
    expect(served.length).toBeGreaterThan(20);
    expect(documented.sort()).toEqual(served.sort());
  });

  it("describes request parameters and bodies and every success answer from the routes' zod schemas", async () => {
    const res = await request(createApp(ctx)).get('/api/openapi.json').expect(200);
    type Operation = {
      parameters: { name: string; in: string; schema: Record<string, unknown> }[];
      responses: Record<string, { content?: { 'application/json': { schema: Record<string, any> } } }>;
      requestBody?: { content: Record<string, unknown> };
    };
    const paths = res.body.paths as Record<string, Record<string, Operation>>;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const success = Object.keys(op.responses).filter((s) => s.startsWith('2'));
        expect(success, `${method} ${path}`).toHaveLength(1);
        if (success[0] !== '204') expect(op.responses[success[0]!]!.content, `${method} ${path}`).toBeDefined();
      }
    }
    const members = paths['/members']!.get!;
    expect(members.parameters.find((p) => p.name === 'limit')).toMatchObject({
      in: 'query',
      schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    });
    const item = members.responses['200']!.content!['application/json'].schema.properties.items.items;
    expect(item.required).toEqual(expect.arrayContaining(['accountId', 'email', 'status', 'effectiveRoles']));
    expect(item.properties.status).toEqual({ type: 'string', enum: ['active', 'pending', 'suspended'] });
    expect(paths['/invitations/import']!.post!.requestBody!.content).toHaveProperty('text/csv');
    expect(paths['/roles']!.post!.requestBody!.content).toMatchObject({
      'application/json': { schema: { required: ['key', 'name', 'permissions'], additionalProperties: false } },
    });
  });
});

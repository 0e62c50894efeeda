/**
 * The OpenAPI 3.1 description of the admin API, served at /api/openapi.json. A test checks that
 * every route the admin router serves is described here.
 */
type Op = { summary: string; permission?: string; body?: string; query?: string[] };

const ROUTES: Record<string, Record<string, Op>> = {
  '/organization': {
    get: { summary: "The caller's organization and its permissions" },
    patch: { summary: 'Change settings', permission: 'org:manage', body: 'OrganizationSettings' },
  },
  '/roles': {
    get: { summary: 'Built-in and custom roles', permission: 'members:view' },
    post: { summary: 'Create a custom role', permission: 'org:manage', body: 'Role' },
  },
  '/roles/{key}': {
    patch: {
      summary: "Rename a custom role or change its permissions (its holders' permissions change at once)",
      permission: 'org:manage',
      body: 'RoleChange',
    },
    delete: {
      summary:
        'Delete a custom role; one in use is refused (409 with its usage) unless reassignTo names the role that replaces it',
      permission: 'org:manage',
      query: ['reassignTo'],
    },
  },
  '/domains': {
    get: { summary: 'Email domains and their verification', permission: 'org:manage' },
    post: {
      summary: 'Add a domain (answers its DNS TXT verification token)',
      permission: 'org:manage',
      body: 'Domain',
    },
  },
  '/domains/{domain}/verify': {
    post: { summary: 'Verify a domain: its DNS TXT records must include its token', permission: 'org:manage' },
  },
  '/domains/{domain}': { delete: { summary: 'Remove a domain', permission: 'org:manage' } },
  '/members': {
    get: {
      summary:
        "A page of members (tab=members: active and suspended; tab=invitations: pending), sorted (sort=name|email|status|joined|lastActive, order=asc|desc), with the total; q searches name or email by prefix; after is the previous page's next",
      permission: 'members:view',
      query: ['tab', 'sort', 'order', 'q', 'status', 'role', 'email', 'group', 'after', 'limit'],
    },
  },
  '/members/{accountId}/roles': {
    put: {
      summary: "Replace a member's direct roles (overrideIdp for a member the IdP manages)",
      permission: 'members:manage',
      body: 'MemberRoles',
    },
  },
  '/members/{accountId}': {
    delete: {
      summary: 'Remove a member (the account stays; overrideIdp for a member the IdP manages)',
      permission: 'members:manage',
      query: ['overrideIdp'],
    },
  },
  '/members/remove': {
    post: { summary: 'Remove up to 100 members, a result each', permission: 'members:manage', body: 'MemberRemoval' },
  },
  '/leave': { post: { summary: 'The signed-in member leaves the organization' } },
  '/invitations': {
    get: { summary: 'List invitations', permission: 'members:view', query: ['status'] },
    post: { summary: 'Invite up to 20 addresses', permission: 'members:manage', body: 'Invite' },
  },
  '/invitations/imports': {
    post: {
      summary: 'Start a background import of a CSV file of up to 1,000 rows (202 with the job)',
      permission: 'members:manage',
      body: 'Csv',
      query: ['roles', 'fileName'],
    },
  },
  '/invitations/imports/{id}': {
    get: { summary: 'An import job: progress (done of total), then the per-row results', permission: 'members:view' },
  },
  '/invitations/imports/example.csv': {
    get: { summary: 'An example CSV file to start from (no authentication needed)' },
  },
  '/invitations/import': {
    post: {
      summary:
        'Invite from a CSV file of up to 1,000 rows in one request (kept for older scripts; prefer /invitations/imports)',
      permission: 'members:manage',
      body: 'Csv',
      query: ['roles'],
    },
  },
  '/invitations/{id}/resend': { post: { summary: 'New token and expiry', permission: 'members:manage' } },
  '/invitations/{id}': { delete: { summary: 'Withdraw a pending invitation', permission: 'members:manage' } },
  '/groups': {
    get: { summary: 'Groups with member counts', permission: 'members:view', query: ['source'] },
    post: { summary: 'Create a local group', permission: 'members:manage', body: 'GroupName' },
  },
  '/groups/{id}': {
    patch: { summary: 'Rename a local group', permission: 'members:manage', body: 'GroupName' },
    delete: { summary: 'Delete a local group', permission: 'members:manage' },
  },
  '/groups/{id}/members': {
    get: { summary: 'Member account ids of a group', permission: 'members:view', query: ['after'] },
    post: { summary: 'Add and remove members of a local group', permission: 'members:manage', body: 'MemberChange' },
  },
  '/group-mappings': {
    get: { summary: 'IdP group to role mappings', permission: 'members:view' },
    post: { summary: 'Map a group (by id or name) to roles', permission: 'members:manage', body: 'Mapping' },
  },
  '/group-mappings/preview': {
    get: {
      summary: 'How many members a mapping of this group (by id or name) would affect',
      permission: 'members:view',
      query: ['groupId', 'groupName'],
    },
  },
  '/group-mappings/{id}': {
    patch: { summary: 'Change the roles a mapping grants', permission: 'members:manage', body: 'Roles' },
    delete: { summary: 'Delete a mapping', permission: 'members:manage' },
  },
  '/webhooks': {
    get: { summary: 'Webhook endpoints', permission: 'org:manage' },
    post: { summary: 'Add an endpoint (the signing secret is shown once)', permission: 'org:manage', body: 'Webhook' },
  },
  '/webhooks/{id}': {
    patch: { summary: 'Enable or disable an endpoint', permission: 'org:manage', body: 'WebhookChange' },
    delete: { summary: 'Delete an endpoint', permission: 'org:manage' },
  },
  '/webhooks/{id}/deliveries': {
    get: {
      summary: "An endpoint's deliveries, newest first, with the last HTTP response code",
      permission: 'org:manage',
      query: ['before', 'limit'],
    },
  },
  '/deliveries/{id}/attempts': {
    get: { summary: 'Every attempt of a delivery: time, HTTP response code, error', permission: 'org:manage' },
  },
  '/deliveries': {
    get: { summary: 'Email and webhook deliveries', permission: 'org:manage', query: ['status', 'after', 'limit'] },
  },
  '/deliveries/retry': {
    post: { summary: 'Put dead letters back in the queue', permission: 'org:manage', body: 'DeliveryIds' },
  },
  '/events': {
    get: {
      summary: 'Events whose dispatch failed (status=failed) or is being retried (status=retrying)',
      permission: 'org:manage',
      query: ['status', 'after', 'limit'],
    },
  },
  '/events/retry': { post: { summary: 'Dispatch failed events again', permission: 'org:manage', body: 'EventIds' } },
  '/scim-tokens': {
    get: { summary: 'SCIM base URL and tokens (never their secrets)', permission: 'org:manage' },
    post: { summary: 'Issue a SCIM token (the secret is shown once)', permission: 'org:manage', body: 'ScimToken' },
  },
  '/scim-tokens/{id}/rotate': {
    post: {
      summary: 'New secret; the old one keeps working for the overlap',
      permission: 'org:manage',
      body: 'Rotation',
    },
  },
  '/scim-tokens/{id}': { delete: { summary: 'Revoke a SCIM token now', permission: 'org:manage' } },
  '/api-keys': {
    get: {
      summary: 'Admin API keys (never their secrets), with who created them and their last use',
      permission: 'org:manage',
    },
    post: {
      summary: 'Issue an admin API key with roles the caller holds (the secret is shown once)',
      permission: 'org:manage',
      body: 'ApiKey',
    },
  },
  '/api-keys/{id}': { delete: { summary: 'Revoke an admin API key now', permission: 'org:manage' } },
  '/scim-tokens/{id}/requests': {
    get: {
      summary: 'What the IdP did with this token, newest first',
      permission: 'org:manage',
      query: ['before', 'limit'],
    },
  },
  '/audit': {
    get: {
      summary: 'The audit log, newest first',
      permission: 'members:manage',
      query: ['actor', 'target', 'action', 'since', 'until', 'before', 'limit'],
    },
  },
  '/audit/export': {
    get: {
      summary: 'The filtered audit log as CSV or JSON Lines (format=csv|jsonl), newest first, at most 100,000 entries',
      permission: 'members:manage',
      query: ['format', 'actor', 'target', 'action', 'since', 'until'],
    },
  },
  '/saml/service-provider': {
    get: {
      summary: 'SP entity id, ACS, metadata and login URLs and certificate to paste into the IdP',
      permission: 'org:manage',
    },
  },
  '/saml/connections': {
    get: { summary: 'SAML connections', permission: 'org:manage' },
    post: {
      summary: 'Add a SAML connection from its IdP metadata URL (fetched now), metadata XML or fields',
      permission: 'org:manage',
      body: 'SamlConnection',
    },
  },
  '/saml/connections/{id}': {
    get: { summary: 'A SAML connection with its certificates and their expiry', permission: 'org:manage' },
    patch: {
      summary: 'Change, disable or re-read metadata of a SAML connection',
      permission: 'org:manage',
      body: 'SamlConnection',
    },
    delete: { summary: 'Delete a SAML connection', permission: 'org:manage' },
  },
  '/saml/connections/{id}/refresh-metadata': {
    post: {
      summary: "Fetch a connection's metadata URL now (a failure is recorded on it and answered 400/502)",
      permission: 'org:manage',
    },
  },
  '/saml/attempts': {
    get: {
      summary: 'SSO attempt log, newest first',
      permission: 'org:manage',
      query: ['outcome', 'connectionId', 'before', 'limit'],
    },
  },
};

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const strings = { type: 'array', items: { type: 'string' } };

const SCHEMAS: Record<string, unknown> = {
  OrganizationSettings: obj({
    name: { type: 'string' },
    inviteTtlHours: { type: 'integer', minimum: 1, maximum: 8760 },
    defaultRole: { type: 'string' },
    autoJoinVerifiedDomains: { type: 'boolean' },
    singleOrganization: { type: 'boolean' },
    requireSso: { type: 'boolean' },
    ssoBreakGlassAccountIds: { type: 'array', items: { type: 'string', format: 'uuid' }, maxItems: 10 },
  }),
  Role: obj({ key: { type: 'string' }, name: { type: 'string' }, permissions: strings }, [
    'key',
    'name',
    'permissions',
  ]),
  RoleChange: obj({ name: { type: 'string' }, permissions: strings }),
  ApiKey: obj(
    { name: { type: 'string' }, roles: strings, expiresInDays: { type: 'integer', minimum: 1, maximum: 3650 } },
    ['name', 'roles'],
  ),
  Domain: obj({ domain: { type: 'string' } }, ['domain']),
  Roles: obj({ roles: strings }, ['roles']),
  MemberRoles: obj({ roles: strings, overrideIdp: { type: 'boolean' } }, ['roles']),
  MemberRemoval: obj({ accountIds: strings, overrideIdp: { type: 'boolean' } }, ['accountIds']),
  Invite: obj(
    {
      emails: { oneOf: [{ type: 'string' }, strings] },
      roles: strings,
      groupIds: strings,
      givenName: { type: 'string' },
      familyName: { type: 'string' },
    },
    ['emails'],
  ),
  Csv: { type: 'string', description: 'CSV with columns email and "group membership"' },
  GroupName: obj({ displayName: { type: 'string' } }, ['displayName']),
  MemberChange: obj({ add: strings, remove: strings }),
  Mapping: obj({ groupId: { type: 'string', format: 'uuid' }, groupName: { type: 'string' }, roles: strings }, [
    'roles',
  ]),
  Webhook: obj({ url: { type: 'string', format: 'uri' }, events: strings }, ['url']),
  WebhookChange: obj({ enabled: { type: 'boolean' } }, ['enabled']),
  DeliveryIds: obj({ ids: strings }),
  EventIds: obj({ ids: strings }),
  ScimToken: obj({ name: { type: 'string' }, expiresInDays: { type: 'integer', minimum: 1, maximum: 3650 } }, ['name']),
  Rotation: obj({ overlapHours: { type: 'number', minimum: 0, maximum: 720 } }),
  SamlConnection: obj({
    name: { type: 'string' },
    metadataUrl: {
      type: ['string', 'null'],
      format: 'uri',
      description:
        'Where the IdP publishes its metadata: fetched now (nothing is saved if that fails) and refreshed by the reconciler; null (PATCH) stops following it',
    },
    metadataXml: {
      type: 'string',
      description: "The IdP's SAML metadata XML; fills idpEntityId, ssoUrl and certificates",
    },
    idpEntityId: { type: 'string' },
    ssoUrl: { type: 'string', format: 'uri', description: 'HTTP-Redirect SingleSignOnService URL' },
    certificates: {
      ...strings,
      description: 'IdP signing certificates (PEM or base64 DER); several during a rotation',
    },
    attributeMapping: obj({
      email: { type: 'string' },
      firstName: { type: 'string' },
      lastName: { type: 'string' },
      groups: { type: 'string' },
    }),
    allowIdpInitiated: { type: 'boolean' },
    enabled: { type: 'boolean' },
    allowedReturnUrls: { ...strings, description: 'URL prefixes (besides PUBLIC_URL) a sign-in may return to' },
    clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 600 },
    updateProfile: {
      type: 'boolean',
      description: "sign-ins replace an existing account's name with the assertion's (default false)",
    },
  }),
  Error: obj({ error: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } }, [
    'error',
    'message',
  ]),
};

export function openApiDocument(publicUrl: string) {
  const error = (description: string) => ({
    description,
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  });
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, ops] of Object.entries(ROUTES)) {
    paths[path] = {};
    for (const [method, op] of Object.entries(ops)) {
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      paths[path][method] = {
        summary: op.summary,
        ...(op.permission ? { description: `Needs the permission \`${op.permission}\`.` } : {}),
        parameters: [
          ...params,
          ...(op.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
        ],
        ...(op.body
          ? {
              requestBody: {
                required: true,
                content: {
                  [op.body === 'Csv' ? 'text/csv' : 'application/json']: {
                    schema: { $ref: `#/components/schemas/${op.body}` },
                  },
                },
              },
            }
          : {}),
        responses: {
          '2XX': { description: 'Success' },
          '400': error('Invalid input'),
          '401': error('Not authenticated'),
          '403': error('A permission is missing'),
          '404': error('Not found'),
          '409': error('Conflict or a membership rule'),
        },
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'orgsync admin API',
      version: '1',
      description: "Every route acts on the caller's own organization.",
    },
    servers: [{ url: `${publicUrl}/api` }],
    security: [{ apiKey: [] }, { session: [] }],
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An admin API key (oskey_…)' },
        session: { type: 'apiKey', in: 'cookie', name: 'orgsync_session' },
      },
      schemas: SCHEMAS,
    },
    paths,
  };
}

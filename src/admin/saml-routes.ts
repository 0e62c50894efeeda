import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { apiRoutes } from './api-routes.ts';
import { requirePermission } from './auth.ts';
import { route, rowId } from './handler.ts';
import { dateTime, page, rowIdText, uuid } from './schemas.ts';
import { notFound } from '../core/errors.ts';
import { findOrganization } from '../core/organizations.ts';
import { listAttempts } from '../saml/attempts.ts';
import {
  assertMayChangeConnection,
  assertMayConnectIdp,
  createConnection,
  deleteConnection,
  getConnection,
  listConnections,
  updateConnection,
  type ConnectionInput,
  type SamlConnection,
} from '../saml/connections.ts';
import { DEFAULT_ATTRIBUTES } from '../saml/identity.ts';
import { certificateInfo, parseIdpMetadata } from '../saml/idp-metadata.ts';
import { refreshConnectionMetadata, settingsFromMetadataUrl } from '../saml/metadata-refresh.ts';
import { serviceProvider } from '../saml/service-provider.ts';

const attributeName = z.string().min(1).max(512);
const settings = {
  name: z.string().trim().min(1).max(100),
  metadataXml: z
    .string()
    .min(1)
    .max(512 * 1024),
  metadataUrl: z.url({ protocol: /^https?$/ }).max(2048),
  idpEntityId: z.string().trim().min(1).max(1024),
  ssoUrl: z.url({ protocol: /^https?$/ }),
  certificates: z.array(z.string().min(1).max(16_384)).min(1).max(10),
  attributeMapping: z
    .object({ email: attributeName, firstName: attributeName, lastName: attributeName, groups: attributeName })
    .partial()
    .strict(),
  allowIdpInitiated: z.boolean(),
  enabled: z.boolean(),
  allowedReturnUrls: z.array(z.url({ protocol: /^https?$/ })).max(20),
  clockSkewSeconds: z.number().int().min(0).max(600),
  updateProfile: z.boolean(),
};
const createInput = z
  .object(settings)
  .partial()
  .required({ name: true })
  .strict()
  .refine(
    (v) => v.metadataXml !== undefined || v.metadataUrl !== undefined || (v.idpEntityId && v.ssoUrl && v.certificates),
    {
      message: 'give either metadataUrl, metadataXml, or idpEntityId, ssoUrl and certificates',
    },
  )
  .refine(oneMetadataSource, { message: 'give metadataUrl or metadataXml, not both' });
const updateInput = z
  .object({ ...settings, metadataUrl: settings.metadataUrl.nullable() })
  .partial()
  .strict()
  .refine(oneMetadataSource, { message: 'give metadataUrl or metadataXml, not both' });
const attemptsQuery = z.object({
  before: rowId('an attempt').optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  connectionId: z.uuid().optional(),
  outcome: z.enum(['success', 'refused']).optional(),
});

const attributeLists = z.strictObject({
  email: z.array(z.string()),
  firstName: z.array(z.string()),
  lastName: z.array(z.string()),
  groups: z.array(z.string()),
});
const serviceProviderAnswer = z.strictObject({
  entityId: z.string(),
  metadataUrl: z.url(),
  acsUrl: z.url(),
  loginUrl: z.url(),
  certificate: z.string().describe('PEM'),
  nameIdFormat: z.string(),
  defaultAttributes: attributeLists.describe('the attribute names read when the mapping names none'),
});
const connection = z.strictObject({
  id: uuid,
  name: z.string(),
  idpEntityId: z.string(),
  ssoUrl: z.string(),
  certificates: z.array(z.string()),
  attributeMapping: settings.attributeMapping,
  allowIdpInitiated: z.boolean(),
  enabled: z.boolean(),
  allowedReturnUrls: z.array(z.string()),
  clockSkewSeconds: z.number().int(),
  updateProfile: z.boolean(),
  metadataUrl: z.string().nullable(),
  metadataRefreshedAt: dateTime.nullable(),
  metadataValidUntil: dateTime.nullable(),
  metadataNextRefreshAt: dateTime.nullable(),
  metadataError: z.string().nullable(),
  metadataErrorAt: dateTime.nullable(),
  createdAt: dateTime,
  updatedAt: dateTime,
  certificateInfo: z.array(z.strictObject({ subject: z.string(), notAfter: dateTime, fingerprintSha256: z.string() })),
});
const attempt = z.strictObject({
  id: rowIdText,
  at: dateTime,
  connectionId: uuid.nullable(),
  idpEntityId: z.string().nullable(),
  nameId: z.string().nullable(),
  email: z.string().nullable(),
  accountId: uuid.nullable(),
  outcome: z.enum(['success', 'refused']),
  reason: z.string().nullable(),
  message: z.string().nullable(),
});

/** SAML connection management under /api/saml; everything needs org:manage. */
export function samlAdminRouter(ctx: AppContext): Router {
  const router = Router();
  router.use(requirePermission('org:manage'));
  const api = apiRoutes(router, '/saml');

  api.get(
    '/service-provider',
    {
      summary: 'SP entity id, ACS, metadata and login URLs and certificate to paste into the IdP',
      permission: 'org:manage',
      responses: { 200: serviceProviderAnswer },
    },
    route(async (_req, res, p) => {
      const organization = (await findOrganization(ctx.sql, p.organizationId))!;
      const entity = await serviceProvider(ctx, organization);
      res.json({
        ...entity.urls,
        certificate: entity.keys.certificate,
        nameIdFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
        defaultAttributes: DEFAULT_ATTRIBUTES,
      });
    }),
  );

  api.get(
    '/connections',
    {
      summary: 'SAML connections',
      permission: 'org:manage',
      responses: { 200: z.strictObject({ items: z.array(connection) }) },
    },
    route(async (_req, res, p) => {
      res.json({ items: (await listConnections(ctx.sql, p.organizationId)).map(present) });
    }),
  );
  api.post(
    '/connections',
    {
      summary: 'Add a SAML connection from its IdP metadata URL (fetched now), metadata XML or fields',
      permission: 'org:manage',
      body: createInput,
      responses: { 201: connection },
    },
    route(async (req, res, p) => {
      const { metadataXml, metadataUrl, ...fields } = createInput.parse(req.body);
      // Checked before the fetch too: a caller without the right makes the server fetch nothing.
      if (metadataUrl !== undefined) await assertMayConnectIdp(ctx.sql, p.organizationId, p.actor);
      const fetched = await fromMetadataUrl(ctx, metadataUrl);
      const input = { ...fromMetadata(metadataXml), ...fetched, ...definedOnly(fields) } as ConnectionInput;
      res.status(201).json(present(await createConnection(ctx.sql, p.organizationId, input, p.actor)));
    }),
  );
  api.get(
    '/connections/:id',
    {
      summary: 'A SAML connection with its certificates and their expiry',
      permission: 'org:manage',
      responses: { 200: connection },
    },
    route(async (req, res, p) => {
      const connection = await getConnection(ctx.sql, p.organizationId, String(req.params.id));
      if (!connection) throw notFound('SAML connection', { id: req.params.id });
      res.json(present(connection));
    }),
  );
  api.patch(
    '/connections/:id',
    {
      summary: 'Change, disable or re-read metadata of a SAML connection',
      permission: 'org:manage',
      body: updateInput,
      responses: { 200: connection },
    },
    route(async (req, res, p) => {
      const { metadataXml, metadataUrl, ...fields } = updateInput.parse(req.body);
      const id = String(req.params.id);
      // Checked before the fetch too: a caller without the right, or a connection not in this
      // organization, makes the server fetch nothing.
      if (typeof metadataUrl === 'string') {
        await assertMayChangeConnection(ctx.sql, p.organizationId, p.actor);
        if (!(await getConnection(ctx.sql, p.organizationId, id))) throw notFound('SAML connection', { id });
      }
      const fetched = metadataUrl === null ? { metadataSource: null } : await fromMetadataUrl(ctx, metadataUrl);
      const change = { ...fromMetadata(metadataXml), ...fetched, ...definedOnly(fields) };
      res.json(present(await updateConnection(ctx.sql, p.organizationId, id, change, p.actor)));
    }),
  );
  // Fetches the connection's metadata URL now (as the reconciler does when it is due).
  api.post(
    '/connections/:id/refresh-metadata',
    {
      summary: "Fetch a connection's metadata URL now (a failure is recorded on it and answered 400/502)",
      permission: 'org:manage',
      responses: { 200: connection },
    },
    route(async (req, res, p) => {
      const { connection, error } = await refreshConnectionMetadata(
        ctx.sql,
        p.organizationId,
        String(req.params.id),
        ctx.config.samlMetadata,
        p.actor,
      );
      // A failure is recorded on the connection (shown with it) and answered as an error.
      if (error) throw error;
      res.json(present(connection));
    }),
  );
  api.delete(
    '/connections/:id',
    { summary: 'Delete a SAML connection', permission: 'org:manage', responses: { 204: null } },
    route(async (req, res, p) => {
      await deleteConnection(ctx.sql, p.organizationId, String(req.params.id), p.actor);
      res.status(204).end();
    }),
  );

  api.get(
    '/attempts',
    {
      summary: 'SSO attempt log, newest first (pass `next` as `before`)',
      permission: 'org:manage',
      query: attemptsQuery,
      responses: { 200: page(attempt, rowIdText) },
    },
    route(async (req, res, p) => {
      const query = attemptsQuery.parse(req.query);
      const items = await listAttempts(ctx.sql, p.organizationId, query);
      res.json({ items, next: items.length === query.limit ? items.at(-1)!.id : null });
    }),
  );
  return router;
}

/** Entity id, SSO URL and certificates from pasted IdP metadata; explicit fields override them. */
function fromMetadata(xml: string | undefined): Partial<ConnectionInput> {
  if (!xml) return {};
  const { entityId, ssoUrl, certificates } = parseIdpMetadata(xml);
  return { idpEntityId: entityId, ssoUrl, certificates };
}

/** Settings fetched from a metadata URL now; nothing is saved when the fetch fails. */
async function fromMetadataUrl(ctx: AppContext, url: string | undefined): Promise<Partial<ConnectionInput>> {
  if (url === undefined) return {};
  return settingsFromMetadataUrl(url, ctx.config.samlMetadata);
}

function oneMetadataSource(v: { metadataXml?: string; metadataUrl?: string | null }): boolean {
  return v.metadataXml === undefined || v.metadataUrl === undefined || v.metadataUrl === null;
}

function definedOnly<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function present(connection: SamlConnection) {
  const { organizationId: _organizationId, ...rest } = connection;
  return { ...rest, certificateInfo: connection.certificates.map(certificateInfo) };
}

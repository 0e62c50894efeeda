import { z } from 'zod';
import { documentedRoutes, type DocumentedRoute } from './api-routes.ts';
import { errorAnswer } from './schemas.ts';

/**
 * The OpenAPI 3.1 description of the admin API, served at /api/openapi.json, generated from the
 * zod schemas each route declares with apiRoutes (api-routes.ts): the query and body it parses
 * and the answers it sends. Tests check that every served route is described and that real
 * answers match their schemas.
 */
type JsonSchema = Record<string, unknown>;

/** JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) of what a request sends or an answer holds. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function parameters(route: DocumentedRoute) {
  const path = [...route.path.matchAll(/:(\w+)/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  if (!route.query) return path;
  const query = jsonSchema(route.query, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return [
    ...path,
    ...Object.entries(query.properties ?? {}).map(([name, schema]) => ({
      name,
      in: 'query',
      required: query.required?.includes(name) ?? false,
      schema,
    })),
  ];
}

const ERRORS = {
  '400': 'Invalid input',
  '401': 'Not authenticated',
  '403': 'A permission is missing',
  '404': 'Not found',
  '409': 'Conflict or a membership rule',
};

function operation(route: DocumentedRoute) {
  const json = (schema: JsonSchema) => ({ 'application/json': { schema } });
  const content = (schema: JsonSchema) =>
    route.responseTypes ? Object.fromEntries(route.responseTypes.map((type) => [type, { schema }])) : json(schema);
  const responses: Record<string, unknown> = {};
  for (const [status, schema] of Object.entries(route.responses)) {
    responses[status] = schema
      ? { description: schema.description ?? 'Success', content: content(jsonSchema(schema, 'output')) }
      : { description: 'Success, no content' };
  }
  for (const [status, description] of Object.entries(ERRORS)) {
    responses[status] = { description, content: json({ $ref: '#/components/schemas/Error' }) };
  }
  return {
    summary: route.summary,
    ...(route.permission ? { description: `Needs the permission \`${route.permission}\`.` } : {}),
    parameters: parameters(route),
    ...(route.body
      ? {
          requestBody: {
            required: true,
            content: { [route.bodyType ?? 'application/json']: { schema: jsonSchema(route.body, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

/** The document for the routes declared so far (build the admin router first). */
export function openApiDocument(publicUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of documentedRoutes()) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    (paths[path] ??= {})[route.method] = operation(route);
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
      schemas: { Error: jsonSchema(errorAnswer, 'output') },
    },
    paths,
  };
}

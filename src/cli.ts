import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { openContext, type AppContext } from './context.ts';
import { systemActor } from './core/actor.ts';
import { issueCredential, listCredentials, revokeCredential, type CredentialKind } from './core/credentials.ts';
import { DomainError, notFound } from './core/errors.ts';
import { createOrganization, findOrganization } from './core/organizations.ts';
import { createLogger } from './log.ts';
import { migrate } from './storage/migrate.ts';
import { createReconciler } from './sync/index.ts';

const USAGE = `usage: orgsync <command> [options] [--json]

  migrate                                   apply database migrations
  org create --name N --owner-email E [--slug S]
                                            create an organization and its first owner
  scim-token create --org ORG --name N [--expires-in-days D]
  scim-token list --org ORG
  scim-token revoke --org ORG --id ID
  api-key create --org ORG --name N [--role R ...] [--expires-in-days D]
  api-key list --org ORG
  api-key revoke --org ORG --id ID
  reconcile --once                          run every reconciler job now and print what changed

ORG is an organization's id or slug. With --json every command prints one JSON object.`;

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  name: { type: 'string' },
  slug: { type: 'string' },
  'owner-email': { type: 'string' },
  org: { type: 'string' },
  id: { type: 'string' },
  role: { type: 'string', multiple: true },
  'expires-in-days': { type: 'string' },
  once: { type: 'boolean' },
} as const;

type Options = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
type Output = { text: string; json: Record<string, unknown> };

class UsageError extends Error {}

const actor = systemActor('cli', 'cli');

async function run(ctx: AppContext, command: string, o: Options): Promise<Output> {
  switch (command) {
    case 'migrate': {
      const applied = await migrate(ctx.sql);
      return { text: applied.length ? `applied ${applied.join(', ')}` : 'database is up to date', json: { applied } };
    }
    case 'org create': {
      const { organization, owner } = await createOrganization(
        ctx.sql,
        { name: required(o, 'name'), slug: o.slug, ownerEmail: required(o, 'owner-email') },
        actor,
      );
      return {
        text: `created organization ${organization.slug} (${organization.id}) owned by ${owner.email}`,
        json: {
          id: organization.id,
          slug: organization.slug,
          name: organization.name,
          ownerAccountId: owner.id,
          ownerEmail: owner.email,
        },
      };
    }
    case 'scim-token create':
    case 'api-key create': {
      const kind: CredentialKind = command === 'scim-token create' ? 'scim' : 'admin';
      const org = await organization(ctx, o);
      const issued = await issueCredential(
        ctx.sql,
        ctx.config.serverSecret,
        { organizationId: org.id, kind, name: required(o, 'name'), expiresAt: expiry(o), roles: o.role },
        actor,
      );
      const what = kind === 'scim' ? 'SCIM token' : 'admin API key';
      const extra = kind === 'scim' ? { scimBaseUrl: `${ctx.config.publicUrl}/scim/v2` } : { roles: issued.roles };
      return {
        text: `${what} ${issued.name} (${issued.id}) for ${org.slug}; shown once:\n${issued.secret}`,
        json: {
          id: issued.id,
          organizationId: org.id,
          name: issued.name,
          [kind === 'scim' ? 'token' : 'key']: issued.secret,
          expiresAt: issued.expiresAt,
          ...extra,
        },
      };
    }
    case 'scim-token list':
    case 'api-key list': {
      const org = await organization(ctx, o);
      const items = await listCredentials(ctx.sql, org.id, command === 'scim-token list' ? 'scim' : 'admin');
      return {
        text:
          items
            .map(
              (c) =>
                `${c.id}  ${c.name}  ${c.secretHint}  ${c.revokedAt ? 'revoked' : 'live'}  last used ${c.lastUsedAt?.toISOString() ?? 'never'}`,
            )
            .join('\n') || '(none)',
        json: { items },
      };
    }
    case 'scim-token revoke':
    case 'api-key revoke': {
      // The kind is part of the lookup: `scim-token revoke` must never revoke an admin API key.
      const kind: CredentialKind = command === 'scim-token revoke' ? 'scim' : 'admin';
      const org = await organization(ctx, o);
      const id = required(o, 'id');
      const revoked = await revokeCredential(ctx.sql, org.id, id, actor, kind).catch((error: unknown) => {
        if (error instanceof DomainError && error.code === 'not_found') {
          const what = kind === 'scim' ? 'SCIM token' : 'admin API key';
          throw new DomainError('not_found', `no ${what} with id ${id} in ${org.slug}`, {
            id,
            kind,
            organization: org.slug,
          });
        }
        throw error;
      });
      return {
        text: `revoked ${revoked.name} (${revoked.id})`,
        json: { id: revoked.id, revokedAt: revoked.revokedAt },
      };
    }
    case 'reconcile': {
      if (!o.once) throw new UsageError('reconcile needs --once (the service runs it on its schedules)');
      const summary = await createReconciler(ctx).runOnce();
      const changed = Object.entries(summary).filter(([k, v]) => k !== 'durationMs' && v);
      return {
        text: `${changed.map(([k, v]) => `${k}: ${v}`).join('\n') || 'nothing to do'}\n(${summary.durationMs} ms)`,
        json: { ...summary },
      };
    }
    default:
      throw new UsageError(`unknown command: ${command || '(none)'}`);
  }
}

function required(o: Options, name: keyof Options): string {
  const value = o[name];
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`--${name} is required`);
  return value;
}

function expiry(o: Options): Date | null {
  if (o['expires-in-days'] === undefined) return null;
  const days = Number(o['expires-in-days']);
  if (!Number.isFinite(days) || days <= 0) throw new UsageError('--expires-in-days must be a positive number');
  return new Date(Date.now() + days * 86_400_000);
}

async function organization(ctx: AppContext, o: Options) {
  const ref = required(o, 'org');
  const org = await findOrganization(ctx.sql, ref);
  if (!org) throw notFound('organization', { org: ref });
  return org;
}

/** `--json` before a `--` terminator; found before parsing, so parse errors are JSON too. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

async function main(argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  const report = (code: string, message: string) => {
    if (json) console.log(JSON.stringify({ error: code, message }));
    else console.error(`orgsync: ${message}`);
  };
  let values: Options;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (error) {
    report('usage', `${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const command = positionals.join(' ');
  if (values.help) {
    console.log(json ? JSON.stringify({ usage: USAGE }) : USAGE);
    return 0;
  }
  if (!command) {
    if (json) report('usage', `no command given\n\n${USAGE}`);
    else console.error(USAGE);
    return 2;
  }
  let ctx: AppContext | undefined;
  try {
    const config = loadConfig();
    ctx = await openContext(config, createLogger(json ? 'silent' : 'warn'));
    const out = await run(ctx, command, values);
    console.log(json ? JSON.stringify(out.json) : out.text);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      report('usage', `${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof DomainError) {
      report(error instanceof DomainError ? error.code : 'config', error.message);
      return 1;
    }
    report('internal', (error as Error).message);
    return 1;
  } finally {
    await ctx?.database.close();
  }
}

process.exitCode = await main(process.argv.slice(2));

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('configuration', () => {
  it('runs with no configuration at all: embedded database, port 3000, demo organization', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      publicUrl: 'http://localhost:3000',
      databaseUrl: undefined,
      demoOrganization: true,
    });
  });

  it('strips the trailing slash of PUBLIC_URL and coerces numbers', () => {
    const config = loadConfig({
      PORT: '8080',
      PUBLIC_URL: 'https://sso.example.com/',
      DATABASE_URL: 'postgres://db/x',
      SERVER_SECRET: 'x'.repeat(32),
    });
    expect(config.publicUrl).toBe('https://sso.example.com');
    expect(config.port).toBe(8080);
    expect(config.demoOrganization).toBe(false);
    expect(config.reconciler).toMatchObject({
      webhookEndpointConcurrency: 2,
      breaker: { failures: 5, cooldownMs: 60_000 },
    });
  });

  it.each([
    [{ PORT: 'abc' }, /PORT: .*got "abc"/],
    [{ PORT: '70000' }, /PORT: /],
    [{ PUBLIC_URL: 'not a url' }, /PUBLIC_URL: /],
    [{ PUBLIC_URL: 'ftp://x.example' }, /PUBLIC_URL: /],
    [{ DATABASE_URL: 'mysql://db/x', SERVER_SECRET: 'x'.repeat(32) }, /DATABASE_URL: /],
    [{ DATABASE_URL: 'postgres://db/x' }, /SERVER_SECRET: is required when DATABASE_URL is set/],
    [{ SERVER_SECRET: 'short' }, /SERVER_SECRET: must be at least 32 characters/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: /],
    [{ DEMO_ORGANIZATION: 'maybe' }, /DEMO_ORGANIZATION: /],
    [{ WEBHOOK_ENDPOINT_CONCURRENCY: '0' }, /WEBHOOK_ENDPOINT_CONCURRENCY: /],
    [{ WEBHOOK_BREAKER_FAILURES: 'many' }, /WEBHOOK_BREAKER_FAILURES: /],
    [{ WEBHOOK_BREAKER_COOLDOWN_MS: '-1' }, /WEBHOOK_BREAKER_COOLDOWN_MS: /],
  ])('refuses %o, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('names every bad variable at once', () => {
    try {
      loadConfig({ PORT: '-1', BODY_LIMIT: 'huge' });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'BODY_LIMIT']);
    }
  });

  it('stops the process with exit code 1 and a message naming the variable', { timeout: 90_000 }, () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { PATH: process.env.PATH, PORT: 'not-a-port' },
      encoding: 'utf8',
      timeout: 80_000, // compiling src/main.ts's imports is slow on a loaded machine
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('PORT');
    expect(result.stderr).toContain('not-a-port');
  });
});

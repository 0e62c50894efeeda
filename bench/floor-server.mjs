// The floor under orgsync's SCIM path on this machine: Node's own HTTP server and the `postgres`
// client with nothing else. A POST /Users is one INSERT … RETURNING of the JSON body (a users
// table with a unique index on lower(user_name)); a GET /Users?filter=userName eq "…" is one
// indexed SELECT; a PATCH /Users/{id} (W5's active:false) is one UPDATE … RETURNING. No
// framework, no authentication, no audit entry, no event, no membership.
// Run it, then point ../shared/peer-bench/scim-load.mjs at it and read its CPU time from /proc:
//
//   node bench/floor-server.mjs --db postgres://postgres@127.0.0.1:5432/bench_floor --port 4461
//   node ../shared/peer-bench/scim-load.mjs --base http://127.0.0.1:4461/scim/v2 --token x --workload W1,W2
//
// It drops and recreates its table `floor_users` on start.
import http from 'node:http';
import postgres from 'postgres';

const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const sql = postgres(arg('db', 'postgres://postgres@127.0.0.1:5432/bench_floor'), { max: 16, onnotice: () => {} });
await sql`drop table if exists floor_users`;
await sql`create table floor_users (id uuid primary key default gen_random_uuid(), user_name text not null, resource jsonb not null)`;
await sql`create unique index floor_users_user_name on floor_users (lower(user_name))`;

const send = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/scim+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
const asUser = (row) => ({ ...row.resource, id: row.id, meta: { resourceType: 'User', location: `/Users/${row.id}` } });

async function answer(req, body) {
  const url = new URL(req.url, 'http://floor');
  if (req.method === 'POST' && url.pathname === '/scim/v2/Users') {
    const user = JSON.parse(body);
    const [row] =
      await sql`insert into floor_users (user_name, resource) values (${user.userName}, ${sql.json(user)}) returning *`;
    return [201, asUser(row)];
  }
  if (req.method === 'GET' && url.pathname === '/scim/v2/Users') {
    const userName = /^userName eq "(.*)"$/.exec(url.searchParams.get('filter') ?? '')?.[1];
    const rows = await sql`select * from floor_users where lower(user_name) = lower(${userName ?? ''})`;
    return [200, { totalResults: rows.length, Resources: rows.map(asUser) }];
  }
  const patched = /^\/scim\/v2\/Users\/([0-9a-f-]{36})$/.exec(url.pathname);
  if (req.method === 'PATCH' && patched) {
    const active = JSON.parse(body).Operations?.[0]?.value !== false;
    const [row] = await sql`
      update floor_users set resource = resource || jsonb_build_object('active', ${active}::boolean)
      where id = ${patched[1]} returning *`;
    return row ? [200, asUser(row)] : [404, { status: '404' }];
  }
  return [404, { status: '404' }];
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      answer(req, Buffer.concat(chunks).toString()).then(
        ([status, body]) => send(res, status, body),
        (error) => send(res, 500, { status: '500', detail: String(error.message) }),
      );
    });
  })
  .listen(Number(arg('port', 4461)), '127.0.0.1');

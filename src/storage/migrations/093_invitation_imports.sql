-- CSV imports run as background jobs. The parsed rows wait here; a worker takes the job's row lock
-- (FOR UPDATE SKIP LOCKED), invites the next batch and records its results in the same
-- transaction, so each row is processed exactly once whichever instance holds the lock, and a
-- worker that dies loses only its uncommitted batch, which the next worker redoes.
create table invitation_imports (
  organization_id uuid not null references organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  status text not null check (status in ('running', 'done', 'failed')),
  file_name text,
  roles text[],
  -- Who uploaded (type, id, name, permissions): the invitations are theirs, checked and audited as theirs.
  actor jsonb not null,
  -- The parsed file, [{row, email, groupIds, errors}], read from position `done` on; emptied when
  -- the job ends (its results keep what the admin needs).
  pending_rows jsonb not null,
  total integer not null check (total > 0),
  done integer not null default 0 check (done between 0 and total),
  invited integer not null default 0,
  results jsonb not null default '[]',
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  primary key (organization_id, id)
);
create index invitation_imports_running on invitation_imports (updated_at) where status = 'running';

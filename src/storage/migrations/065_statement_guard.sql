-- A write made of one statement (a CTE of several steps) that finds, midway, a case it does not
-- cover calls this: the error undoes the whole statement (and its implicit transaction), and
-- the caller takes its longer, step-by-step path. Its SQLSTATE tells it from real failures.
create function orgsync_take_longer_path(reason text) returns boolean
language plpgsql as $$
begin
  raise exception 'statement guard: %', reason using errcode = 'OS001';
end
$$;

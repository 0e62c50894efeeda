-- The one-statement SCIM writes ask whether any organization has the single-organization rule
-- (then a join takes the step-by-step path that checks it); this answers that without a scan.
create index organizations_single_organization on organizations (id) where single_organization;

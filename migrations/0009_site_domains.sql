-- More domains a site answers to in Plausible's Events API (`domain` there names a site: its
-- name, or one of these). A domain names at most one site; lookups lower-case it first.
CREATE TABLE site_domains (
  domain text PRIMARY KEY,
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE
);
CREATE INDEX site_domains_by_site ON site_domains (site_id);

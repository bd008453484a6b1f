-- A site's settings: the IANA time zone its periods, days and hours follow (src/time/zone.ts),
-- and how many days its raw events are kept (NULL: forever).
ALTER TABLE sites ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE sites ADD COLUMN retention_days integer NULL CHECK (retention_days BETWEEN 1 AND 36500);

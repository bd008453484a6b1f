-- Time-bucket rollups of the analytics engine (src/process/buckets.ts), written behind from the
-- real-time layer by the counters engine: one row per site, resolution ('m' minute, 'h' hour,
-- 'd' day), bucket start (epoch seconds), dimension and value ('' and '' for the site totals),
-- and metric. Kept at every resolution forever: stats read them for buckets Redis no longer
-- holds, and `tally rebuild` restores Redis from them.
CREATE TABLE rollups (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  res char(1) NOT NULL,
  bucket bigint NOT NULL,
  dim text NOT NULL,
  value text NOT NULL,
  metric text NOT NULL,
  count bigint NOT NULL,
  PRIMARY KEY (site_id, res, bucket, dim, metric, value)
);

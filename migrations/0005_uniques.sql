-- Unique-visitor sketches per time bucket (and per dimension value), copied from the real-time
-- layer whenever they change: `hll` is the implementation's own dump (Redis HyperLogLog bytes,
-- or the embedded layer's member list), `visitors` its count when copied.
CREATE TABLE uniques (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  res char(1) NOT NULL,
  bucket bigint NOT NULL,
  dim text NOT NULL,
  value text NOT NULL,
  hll bytea NOT NULL,
  visitors bigint NOT NULL,
  PRIMARY KEY (site_id, res, bucket, dim, value)
);

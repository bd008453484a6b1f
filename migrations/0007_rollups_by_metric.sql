-- Stats read one metric (or the totals, dim '') of a few buckets: this order reaches those rows
-- without walking every ranking row of each bucket, whatever the number of dimension values.
CREATE INDEX rollups_by_metric ON rollups (site_id, res, dim, metric, bucket);

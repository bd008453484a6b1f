-- rollups and uniques take a steady stream of upserts and grow fast. PostgreSQL's defaults
-- analyze a table after 10 % of it changed, so on a growing table the planner's statistics lag:
-- measured at 3M loaded events, a cold custom-range summary walked rollups_by_metric for
-- 90–170 ms instead of seeking the primary key in ~10 ms (the plan after an ANALYZE). Analyze
-- after 2 %, vacuum after 5 %.
ALTER TABLE rollups SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE uniques SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);

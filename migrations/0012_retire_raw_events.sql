-- Raw events are no longer written to PostgreSQL: every processed event goes to the columnar
-- event store (Parquet files, docs/events.md), which answers every question about them. The
-- table is kept under another name, not dropped, so an upgrade destroys nothing: its rows are
-- the history before the upgrade. Drop it once it is not wanted:
--   DROP TABLE raw_events_retired;   -- its day partitions go with it
ALTER TABLE events RENAME TO raw_events_retired;

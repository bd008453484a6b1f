-- The embedded default's ingestion queue, kept durable: an entry the collector acknowledged
-- survives a crash of the one process until the processor has counted it. Tally on a
-- PostgreSQL server leaves it empty (Redis Streams hold the queue there).
CREATE TABLE ingest_journal (
  id bigserial PRIMARY KEY,
  stream text NOT NULL,
  payload text NOT NULL
);

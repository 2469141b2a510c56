-- 0008: rejected requests (SPEC §5, §7). The ingest listener records every 4xx answer here,
-- without its body or any token: the resolved client address, the status, the error code and
-- what the request claimed to be (event, member_id, domain; each cut to 64 characters). The
-- writer inserts them in its batches and keeps the newest ingest.keep_rejections rows by
-- deleting the ids at or below (newest id - keep): a range of the primary key, never a scan.
-- Ids come from the rowid (largest + 1, no AUTOINCREMENT: a reused id after a trim would not
-- matter, and without gaps the id arithmetic keeps exactly keep_rejections rows).
CREATE TABLE rejections (
  id INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,  -- unix milliseconds
  client_addr TEXT NOT NULL,
  status INTEGER NOT NULL,
  error TEXT NOT NULL,
  event TEXT,
  member_id TEXT,
  domain TEXT
);

-- GET /api/v1/rejections?member_id=...: one portal's rejections, newest first.
CREATE INDEX rejections_member_id ON rejections(member_id, id) WHERE member_id IS NOT NULL;

-- The rejections with received_at as ISO 8601 text (as events_readable does, 0004).
CREATE VIEW rejections_readable AS
SELECT
  r.id,
  r.received_at,
  strftime('%Y-%m-%dT%H:%M:%S', r.received_at / 1000, 'unixepoch')
    || printf('.%03dZ', r.received_at % 1000) AS received_at_utc,
  r.client_addr,
  r.status,
  r.error,
  r.event,
  r.member_id,
  r.domain
FROM rejections r;

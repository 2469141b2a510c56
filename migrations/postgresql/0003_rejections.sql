-- 0003 (PostgreSQL): rejected requests (SPEC §5, §7; SQLite's 0008). Every 4xx answer of the
-- ingest listener, without its body or any token: the resolved client address, the status, the
-- error code and what the request claimed to be (event, member_id, domain; each cut to 64
-- characters). Each receiver's writer inserts them in its batches and keeps the newest
-- ingest.keep_rejections by deleting the ids at or below (its newest id - keep): a range of the
-- primary key, never a scan. Ids come from the identity's sequence, shared by every receiver; a
-- value lost to a rolled-back transaction only makes the trim keep a few rows fewer.
CREATE TABLE rejections (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at bigint NOT NULL,  -- unix milliseconds
  client_addr text NOT NULL,
  status      integer NOT NULL,
  error       text NOT NULL,
  event       text,
  member_id   text,
  domain      text
);

-- GET /api/v1/rejections?member_id=...: one portal's rejections, newest first.
CREATE INDEX rejections_member_id ON rejections(member_id, id) WHERE member_id IS NOT NULL;

-- The rejections with received_at as ISO 8601 UTC text (as events_readable does, 0002).
CREATE VIEW rejections_readable AS
SELECT
  r.id,
  r.received_at,
  to_char(to_timestamp(r.received_at / 1000.0) AT TIME ZONE 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS received_at_utc,
  r.client_addr,
  r.status,
  r.error,
  r.event,
  r.member_id,
  r.domain
FROM rejections r;

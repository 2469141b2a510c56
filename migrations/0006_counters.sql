-- 0006: counters, so that /api/v1/stats, /api/v1/stats/timeline, /api/v1/portals and
-- /api/v1/portals/{id} never count rows of events (SPEC §5). The writer keeps them in the
-- transaction that stores the events, and purges in the transaction that deletes them
-- (storage/sqlite/sqlite_counters.cpp), one UPSERT per distinct key per batch.

-- Stored events per portal and event code. by_event and by_portal of /api/v1/stats are sums
-- over these rows (portals x event codes, a few thousand at most), a portal's event_count the
-- sum of its own.
CREATE TABLE event_counts (
  member_id TEXT NOT NULL,
  event     TEXT NOT NULL,
  count     INTEGER NOT NULL,
  PRIMARY KEY (member_id, event)
) WITHOUT ROWID;

-- Stored events per bucket of received time, portal and event code. width is 60, 3600 or
-- 86400 seconds, start a multiple of it (unix seconds). member_id '' holds the sum over every
-- portal (no real member_id is empty), so that a timeline of all portals is one range of the
-- key, like that of one portal. Old minute and hour buckets are pruned (README: timeline).
CREATE TABLE event_buckets (
  width     INTEGER NOT NULL,
  member_id TEXT NOT NULL,
  start     INTEGER NOT NULL,
  event     TEXT NOT NULL,
  count     INTEGER NOT NULL,
  PRIMARY KEY (width, member_id, start, event)
) WITHOUT ROWID;

INSERT INTO event_counts(member_id, event, count)
SELECT member_id, event, count(*) FROM events GROUP BY member_id, event;

INSERT INTO event_buckets(width, member_id, start, event, count)
SELECT w.width, e.member_id, (e.received_at / 1000) / w.width * w.width, e.event, count(*)
FROM events e, (SELECT 60 AS width UNION ALL SELECT 3600 UNION ALL SELECT 86400) w
GROUP BY 1, 2, 3, 4;

INSERT INTO event_buckets(width, member_id, start, event, count)
SELECT width, '', start, event, sum(count) FROM event_buckets GROUP BY width, start, event;

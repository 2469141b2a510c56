-- Per-portal activity: install state, events, last event, and whether the portal went silent.
--
-- silent is 'SILENT' for a portal that is not uninstalled and has received no event in the last
-- @silent_hours hours; an installed application whose portal stops sending events usually lost
-- its handlers (event.unbind, an admin, an expired subscription). Silent portals sort first.
-- events counts only events received since @since; last_event_utc is the latest ever received.
--
-- Parameters: @since (unix seconds; --since), default all events;
--             @silent_hours (--silent-hours), default 24.

-- Without @since the view's count (read from an index) is the answer; the table is read only
-- when a window is asked for (SQLite tests the constant condition once, before the scan).
WITH recent AS (
  SELECT member_id, count(*) AS events
  FROM events
  WHERE @since IS NOT NULL AND received_at >= @since * 1000
  GROUP BY member_id
),
portal AS (
  SELECT
    a.*,
    a.state <> 'uninstalled'
      AND (a.last_received_at IS NULL
           OR a.last_received_at
              < (CAST(strftime('%s', 'now') AS INTEGER) - coalesce(@silent_hours, 24) * 3600) * 1000)
      AS is_silent
  FROM portal_activity a
)
SELECT
  p.member_id,
  p.domain,
  p.state,
  CASE WHEN @since IS NULL THEN p.event_count ELSE coalesce(r.events, 0) END AS events,
  p.last_event,
  p.last_received_utc AS last_event_utc,
  p.hours_since_last_event AS hours_silent,
  CASE WHEN p.is_silent THEN 'SILENT' ELSE '' END AS silent,
  p.token_count AS tokens
FROM portal p
LEFT JOIN recent r ON r.member_id = p.member_id
ORDER BY p.is_silent DESC, p.last_received_at, p.domain;

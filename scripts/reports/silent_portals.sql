-- Installed portals that sent no event in the last @silent_hours hours (for alerts).
--
-- The same rule as the silent column of portal_activity, alone, so a cron job can alert when
-- `scripts/report silent_portals --format csv` prints anything. Uninstalled portals are left
-- out: they are expected to be quiet.
--
-- Parameters: @silent_hours (--silent-hours), default 24.

SELECT
  member_id,
  domain,
  state,
  last_event,
  last_received_utc AS last_event_utc,
  hours_since_last_event AS hours_silent,
  event_count AS events_ever
FROM portal_activity
WHERE state <> 'uninstalled'
  AND (last_received_at IS NULL
       OR last_received_at
          < (CAST(strftime('%s', 'now') AS INTEGER) - coalesce(@silent_hours, 24) * 3600) * 1000)
ORDER BY last_received_at, domain;

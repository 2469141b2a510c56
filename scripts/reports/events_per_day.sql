-- Events received per UTC day and event code, with how many portals sent them.
--
-- Days are the store's receive time (events.received_at), which every event has; Bitrix24's own
-- ts can be missing and lags when its queue is slow. Includes installs, uninstalls and every
-- repeated delivery (see repeated_deliveries).
--
-- Parameters: @since (unix seconds; scripts/report --since), default: all events.

SELECT
  received_day AS day,
  event,
  count(*) AS events,
  count(DISTINCT member_id) AS portals
FROM events_readable
WHERE received_at >= coalesce(@since, 0) * 1000
GROUP BY received_day, event
ORDER BY received_day, event;

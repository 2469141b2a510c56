-- Repeated deliveries: the same portal, event, handler, ts and data stored more than once.
--
-- The store keeps every delivery it acknowledged (SPEC: nothing is de-duplicated away), so a
-- consumer that must act once per event can use this to see how often Bitrix24 (or a proxy
-- retrying a request) delivered the same event twice. ids lists the stored copies.
--
-- Parameters: @since (unix seconds; --since), default all events.

SELECT
  member_id,
  domain,
  event,
  event_handler_id,
  ts_utc,
  entity_id,
  count(*) AS deliveries,
  group_concat(id, ',') AS ids,
  min(received_at_utc) AS first_received_utc,
  max(received_at_utc) AS last_received_utc
FROM (
  SELECT * FROM events_readable
  WHERE received_at >= coalesce(@since, 0) * 1000
  ORDER BY id
)
GROUP BY member_id, event, event_handler_id, ts, data
HAVING count(*) > 1
ORDER BY deliveries DESC, min(id);

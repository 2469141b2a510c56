-- The busiest entities: the CRM records (deals, contacts, items, ...) with the most events.
--
-- An entity is a portal's entity_id of one kind; the kind is the event code without ON and its
-- action (ONCRMDEALADD and ONCRMDEALUPDATE are both CRMDEAL), plus entity_type_id for smart
-- processes. A record that is updated in a loop (an automation rule fighting an integration)
-- shows up at the top.
--
-- Parameters: @since (unix seconds; --since), default all events; @limit (--limit), default 20.

SELECT
  member_id,
  domain,
  kind,
  entity_type_id,
  entity_id,
  count(*) AS events,
  group_concat(DISTINCT event) AS event_codes,
  min(received_at_utc) AS first_utc,
  max(received_at_utc) AS last_utc
FROM (
  SELECT
    member_id,
    domain,
    CASE WHEN action_less LIKE 'ON%' THEN substr(action_less, 3) ELSE action_less END AS kind,
    entity_type_id,
    entity_id,
    event,
    received_at_utc
  FROM (
    SELECT
      *,
      CASE
        WHEN event LIKE '%ADD' THEN substr(event, 1, length(event) - 3)
        WHEN event LIKE '%UPDATE' OR event LIKE '%DELETE' THEN substr(event, 1, length(event) - 6)
        ELSE event
      END AS action_less
    FROM events_readable
    WHERE entity_id IS NOT NULL
      AND received_at >= coalesce(@since, 0) * 1000
  )
)
GROUP BY member_id, kind, entity_type_id, entity_id
ORDER BY events DESC, member_id, kind, entity_id
LIMIT coalesce(@limit, 20);

-- 0002 (PostgreSQL): the report views of SQLite's 0004, for psql users (SPEC §11): times as
-- ISO 8601 UTC text, never a token value. "now" is the server's clock as of the query.
-- Bitrix24 refresh tokens live 180 days; that constant appears here and in the reports.

CREATE VIEW events_readable AS
SELECT
  e.id,
  e.member_id,
  e.domain,
  e.event,
  e.event_handler_id,
  e.event_id,
  e.ts,
  to_char(to_timestamp(e.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ts_utc,
  e.received_at,
  to_char(to_timestamp(e.received_at / 1000.0) AT TIME ZONE 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS received_at_utc,
  (to_timestamp(e.received_at / 1000) AT TIME ZONE 'UTC')::date AS received_day,
  e.user_id,
  e.entity_id,
  e.entity_type_id,
  e.data
FROM events e;

CREATE VIEW portal_activity AS
SELECT
  p.member_id,
  p.domain,
  p.status,
  CASE
    WHEN p.uninstalled_at IS NOT NULL THEN 'uninstalled'
    WHEN p.installed_at IS NULL THEN 'never installed'  -- known only through a static token
    ELSE 'installed'
  END AS state,
  to_char(to_timestamp(p.installed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS installed_utc,
  to_char(to_timestamp(p.uninstalled_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS uninstalled_utc,
  coalesce(a.event_count, 0) AS event_count,
  f.received_at AS first_received_at,
  to_char(to_timestamp(f.received_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS first_received_utc,
  l.received_at AS last_received_at,
  to_char(to_timestamp(l.received_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS last_received_utc,
  l.event AS last_event,
  l.ts AS last_event_ts,
  round((extract(epoch FROM now()) - l.received_at / 1000.0) / 3600.0, 1)
    AS hours_since_last_event,
  (SELECT count(*) FROM tokens t WHERE t.member_id = p.member_id) AS token_count
FROM portals p
LEFT JOIN (
  SELECT member_id, count(*) AS event_count, min(id) AS first_id, max(id) AS last_id
  FROM events
  GROUP BY member_id
) a ON a.member_id = p.member_id
LEFT JOIN events f ON f.id = a.first_id
LEFT JOIN events l ON l.id = a.last_id;

CREATE VIEW token_health AS
SELECT
  t.member_id,
  p.domain,
  t.user_id,
  t.source,
  t.scope,
  t.access_token IS NOT NULL AS has_access_token,
  t.expires_at,
  to_char(to_timestamp(t.expires_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS expires_utc,
  t.expires_at - extract(epoch FROM now())::bigint AS expires_in_seconds,
  t.refresh_token IS NOT NULL AS has_refresh_token,
  t.refresh_token_at,
  to_char(to_timestamp(t.refresh_token_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS refresh_token_utc,
  round((extract(epoch FROM now()) - t.refresh_token_at) / 86400.0, 1) AS refresh_token_age_days,
  to_char(to_timestamp(t.refresh_token_at + 180 * 86400) AT TIME ZONE 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS refresh_token_ends_utc,
  t.last_refresh_at,
  to_char(to_timestamp(t.last_refresh_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS last_refresh_utc,
  t.last_refresh_error,
  t.refresh_failures,
  coalesce(t.last_refresh_error ILIKE '%invalid_grant%'
           OR t.last_refresh_error ILIKE '%expired_token%', false) AS refresh_dead,
  to_char(to_timestamp(t.updated_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS updated_utc
FROM tokens t
LEFT JOIN portals p ON p.member_id = t.member_id;

CREATE VIEW portals_needing_reinstall AS
SELECT
  p.member_id,
  p.domain,
  CASE
    WHEN p.uninstalled_at IS NOT NULL THEN 'uninstalled'
    WHEN coalesce(k.tokens, 0) = 0 THEN 'no OAuth tokens stored'
    WHEN k.with_refresh = 0 THEN 'no refresh token stored'
    WHEN k.dead > 0 THEN 'refresh token refused: ' || k.dead_error
    ELSE 'refresh token older than 180 days'
  END AS reason,
  to_char(to_timestamp(p.uninstalled_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    AS uninstalled_utc
FROM portals p
LEFT JOIN (
  SELECT
    member_id,
    count(*) AS tokens,
    count(*) FILTER (WHERE has_refresh_token) AS with_refresh,
    count(*) FILTER (WHERE refresh_dead) AS dead,
    max(CASE WHEN refresh_dead THEN last_refresh_error END) AS dead_error,
    count(*) FILTER (WHERE has_refresh_token AND NOT refresh_dead
                     AND (refresh_token_at IS NULL
                          OR refresh_token_at > extract(epoch FROM now()) - 180 * 86400))
      AS usable
  FROM token_health
  GROUP BY member_id
) k ON k.member_id = p.member_id
WHERE p.uninstalled_at IS NOT NULL OR coalesce(k.usable, 0) = 0;

-- 0004: views for people reading the database with sqlite3 (scripts/report, ad hoc queries).
-- They present times as ISO 8601 UTC text and never expose a token value: token_health says
-- whether a token is there, never what it is.
--
-- Every column is named explicitly (no SELECT *) and only the columns of 0001 are used, so the
-- views read the same whether or not later migrations add columns to these tables.
-- "now" is SQLite's clock (strftime('%s','now')), so the relative columns are as of the query.
-- Bitrix24 refresh tokens live 180 days; that constant appears here and in the reports.

-- Every event with its times as text: received_at (unix ms) as ISO 8601 with milliseconds,
-- ts (unix seconds, as Bitrix24 sent it) as ISO 8601. The numeric columns stay for arithmetic.
CREATE VIEW events_readable AS
SELECT
  e.id,
  e.member_id,
  e.domain,
  e.event,
  e.event_handler_id,
  e.event_id,
  e.ts,
  strftime('%Y-%m-%dT%H:%M:%SZ', e.ts, 'unixepoch') AS ts_utc,
  e.received_at,
  -- Integer arithmetic rather than received_at / 1000.0, so the milliseconds print exactly.
  strftime('%Y-%m-%dT%H:%M:%S', e.received_at / 1000, 'unixepoch')
    || printf('.%03dZ', e.received_at % 1000) AS received_at_utc,
  date(e.received_at / 1000, 'unixepoch') AS received_day,
  e.user_id,
  e.entity_id,
  e.entity_type_id,
  e.data
FROM events e;

-- One row per portal: install state, how many events it sent, its first and last event, and
-- how long it has been quiet. The aggregate walks the covering index events_member_id
-- (member_id, id) rather than the table; ids grow with received_at, so min/max id are the first
-- and last events received.
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
  strftime('%Y-%m-%dT%H:%M:%SZ', p.installed_at, 'unixepoch') AS installed_utc,
  strftime('%Y-%m-%dT%H:%M:%SZ', p.uninstalled_at, 'unixepoch') AS uninstalled_utc,
  coalesce(a.event_count, 0) AS event_count,
  f.received_at AS first_received_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', f.received_at / 1000, 'unixepoch') AS first_received_utc,
  l.received_at AS last_received_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', l.received_at / 1000, 'unixepoch') AS last_received_utc,
  l.event AS last_event,
  l.ts AS last_event_ts,
  round((CAST(strftime('%s', 'now') AS INTEGER) - l.received_at / 1000) / 3600.0, 1)
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

-- One row per stored token pair, without the tokens: access token expiry, refresh token age
-- and the end of its 180-day life, and the outcome of the last refresh attempt. refresh_dead
-- is 1 when the OAuth server answered that the refresh token is no longer valid.
CREATE VIEW token_health AS
SELECT
  t.member_id,
  p.domain,
  t.user_id,
  t.source,
  t.scope,
  t.access_token IS NOT NULL AS has_access_token,
  t.expires_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', t.expires_at, 'unixepoch') AS expires_utc,
  t.expires_at - CAST(strftime('%s', 'now') AS INTEGER) AS expires_in_seconds,
  t.refresh_token IS NOT NULL AS has_refresh_token,
  t.refresh_token_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', t.refresh_token_at, 'unixepoch') AS refresh_token_utc,
  round((CAST(strftime('%s', 'now') AS INTEGER) - t.refresh_token_at) / 86400.0, 1)
    AS refresh_token_age_days,
  strftime('%Y-%m-%dT%H:%M:%SZ', t.refresh_token_at + 180 * 86400, 'unixepoch')
    AS refresh_token_ends_utc,
  t.last_refresh_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', t.last_refresh_at, 'unixepoch') AS last_refresh_utc,
  t.last_refresh_error,
  t.refresh_failures,
  -- The OAuth server's words for a refresh token that will never work again. LIKE ignores
  -- ASCII case and matches the code wherever the refresher put it in its message.
  coalesce(t.last_refresh_error LIKE '%invalid_grant%'
           OR t.last_refresh_error LIKE '%expired_token%', 0) AS refresh_dead,
  strftime('%Y-%m-%dT%H:%M:%SZ', t.updated_at, 'unixepoch') AS updated_utc
FROM tokens t
LEFT JOIN portals p ON p.member_id = t.member_id;

-- Portals the application can no longer act for until someone installs it again: uninstalled
-- ones, ones with no token at all, and ones none of whose tokens holds a usable refresh token
-- (present, younger than 180 days, not refused by the OAuth server). Tokens that events carry
-- for other users have no refresh token, so one such token alone does not make a portal usable.
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
  strftime('%Y-%m-%dT%H:%M:%SZ', p.uninstalled_at, 'unixepoch') AS uninstalled_utc
FROM portals p
LEFT JOIN (
  SELECT
    member_id,
    count(*) AS tokens,
    sum(has_refresh_token) AS with_refresh,
    sum(refresh_dead) AS dead,
    max(CASE WHEN refresh_dead THEN last_refresh_error END) AS dead_error,
    sum(has_refresh_token
        AND NOT refresh_dead
        AND (refresh_token_at IS NULL
             OR refresh_token_at > CAST(strftime('%s', 'now') AS INTEGER) - 180 * 86400))
      AS usable
  FROM token_health
  GROUP BY member_id
) k ON k.member_id = p.member_id
WHERE p.uninstalled_at IS NOT NULL OR coalesce(k.usable, 0) = 0;

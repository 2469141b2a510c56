-- Token health: portals needing a reinstall, failing refreshes, ageing refresh tokens, expiry.
--
-- Covers portals that need a reinstall, dead or failing refreshes, refresh tokens near the end
-- of their 180-day life, and when each access token expires. It shows no token values.
--
-- One row per portal that needs a reinstall (user_id empty, from the view
-- portals_needing_reinstall), then one row per stored token pair, problems first. status is,
-- by priority: 'refresh token refused' (the OAuth server said it is dead: a reinstall is
-- needed), 'refresh token expired' (older than 180 days), 'refresh failing' (the last attempts
-- failed; the stored token is kept and retried), 'refresh token ends in N days' (within
-- @warn_days; the keep-alive pass should renew it before then), 'access only' (a token an event
-- carried for another user; it has no refresh token and lapses with its access token), 'ok'.
-- An expired access token is normal (access tokens live an hour and are refreshed on demand),
-- so access shows it without making it a problem.
--
-- Parameters: @warn_days (--warn-days), default 30.

WITH token AS (
  SELECT
    h.*,
    CAST(floor((h.refresh_token_at + 180 * 86400 - CAST(strftime('%s', 'now') AS INTEGER))
               / 86400.0) AS INTEGER) AS refresh_days_left
  FROM token_health h
),
problem AS (
  SELECT
    t.*,
    CASE
      WHEN t.refresh_dead THEN 'refresh token refused'
      WHEN t.has_refresh_token AND t.refresh_days_left < 0 THEN 'refresh token expired'
      WHEN t.refresh_failures > 0 THEN 'refresh failing'
      WHEN t.has_refresh_token AND t.refresh_days_left <= coalesce(@warn_days, 30)
        THEN 'refresh token ends in ' || t.refresh_days_left || ' days'
      WHEN NOT t.has_refresh_token THEN 'access only'
      ELSE 'ok'
    END AS status,
    CASE
      WHEN t.refresh_dead THEN 1
      WHEN t.has_refresh_token AND t.refresh_days_left < 0 THEN 1
      WHEN t.refresh_failures > 0 THEN 2
      WHEN t.has_refresh_token AND t.refresh_days_left <= coalesce(@warn_days, 30) THEN 3
      WHEN NOT t.has_refresh_token THEN 4
      ELSE 5
    END AS rank
  FROM token t
)
SELECT member_id, domain, user_id, status, access, access_expires_utc, refresh_token_utc,
       refresh_days_left, last_refresh_utc, refresh_failures, last_refresh_error
FROM (
  SELECT
    0 AS rank,
    r.member_id,
    r.domain,
    NULL AS user_id,
    'NEEDS REINSTALL: ' || r.reason AS status,
    NULL AS access,
    NULL AS access_expires_utc,
    NULL AS refresh_token_utc,
    NULL AS refresh_days_left,
    NULL AS last_refresh_utc,
    NULL AS refresh_failures,
    NULL AS last_refresh_error
  FROM portals_needing_reinstall r
  UNION ALL
  SELECT
    p.rank,
    p.member_id,
    p.domain,
    p.user_id,
    p.status,
    CASE
      WHEN NOT p.has_access_token OR p.expires_at IS NULL THEN 'none'
      WHEN p.expires_in_seconds <= 0 THEN 'expired'
      ELSE 'expires in ' || (p.expires_in_seconds / 60) || ' min'
    END,
    p.expires_utc,
    p.refresh_token_utc,
    p.refresh_days_left,
    p.last_refresh_utc,
    p.refresh_failures,
    p.last_refresh_error
  FROM problem p
)
ORDER BY rank, domain, member_id, user_id;

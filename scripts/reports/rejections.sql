-- Rejected ingest requests by client address, status and error, newest first.
--
-- Every 4xx answer of the ingest listener is a row of rejections (migration 0008): the client
-- address (the forwarded one through a trusted proxy), the status, the error code and what the
-- request claimed (event, member_id, domain, each cut to 64 characters). Only the newest
-- ingest.keep_rejections rows are kept, so counts cover that window, not all time. A client
-- with many verification_failed rows for one member_id is guessing that portal's token.
--
-- Parameters: @since (unix seconds; scripts/report --since), default: every kept row.

SELECT
  client_addr,
  status,
  error,
  count(*) AS rejections,
  count(DISTINCT member_id) AS portals_claimed,
  min(received_at_utc) AS first_utc,
  max(received_at_utc) AS last_utc
FROM rejections_readable
WHERE received_at >= coalesce(@since, 0) * 1000
GROUP BY client_addr, status, error
ORDER BY max(received_at) DESC, client_addr, status, error;

-- 0003: what token refresh (SPEC §6) keeps on each tokens row.
--
-- A refresher claims a row before it spends the row's refresh token: it sets the lease in a
-- BEGIN IMMEDIATE transaction, and every other refresher (the server's timer, a cron job, a
-- `token` call, in any process) leaves a leased row alone until the lease is released or
-- expires. Bitrix24 rotates the refresh token on every use, so spending one twice kills it.

-- Unix seconds until which a refresher holds the row; NULL when nobody does.
ALTER TABLE tokens ADD COLUMN refresh_lease_until INTEGER;
-- Random id of the refresher holding the lease; results are written only by the holder.
ALTER TABLE tokens ADD COLUMN refresh_lease_owner TEXT;
-- Set when Bitrix24 answered that the refresh token is dead (invalid_grant, expired_token,
-- invalid_client, wrong_client, PAYMENT_REQUIRED, NO_AUTH_FOUND): the row is not retried until
-- an install or an event brings a new refresh token (or `refresh-tokens --force`). The portal
-- needs a reinstall. The dead refresh token itself is kept.
ALTER TABLE tokens ADD COLUMN refresh_dead_at INTEGER;
-- 1 when the row's authorization came from ONAPPINSTALL: `b24-event-store token MEMBER_ID`
-- prints the installing user's token, and a refresh must not forget who that was.
ALTER TABLE tokens ADD COLUMN from_install INTEGER NOT NULL DEFAULT 0;
UPDATE tokens SET from_install = 1 WHERE source = 'install';

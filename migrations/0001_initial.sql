-- 0001: the three tables of SPEC §7. Times are unix seconds, except events.received_at
-- (unix milliseconds). Token columns hold secrets: reports use the views of later migrations.

CREATE TABLE portals (
  member_id         TEXT PRIMARY KEY,
  domain            TEXT NOT NULL,
  client_endpoint   TEXT,
  server_endpoint   TEXT,
  application_token TEXT,             -- learned at ONAPPINSTALL; NULL after uninstall
  status            TEXT,             -- L local, F free, D demo, T trial, P paid, S subscription
  scope             TEXT,
  installed_at      INTEGER,
  uninstalled_at    INTEGER,          -- set by ONAPPUNINSTALL, cleared by a new install
  updated_at        INTEGER NOT NULL
);

CREATE TABLE tokens (
  member_id          TEXT NOT NULL REFERENCES portals(member_id),
  user_id            INTEGER NOT NULL,  -- the installing user, or a bot's user id
  access_token       TEXT,
  refresh_token      TEXT,
  expires_at         INTEGER,           -- when the access token expires
  refresh_token_at   INTEGER,           -- when the stored refresh token was obtained
  scope              TEXT,
  source             TEXT NOT NULL CHECK (source IN ('install', 'event', 'refresh')),
  updated_at         INTEGER NOT NULL,
  last_refresh_at    INTEGER,
  last_refresh_error TEXT,
  refresh_failures   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (member_id, user_id)
);

CREATE TABLE events (
  id               INTEGER PRIMARY KEY,
  member_id        TEXT NOT NULL,
  domain           TEXT,
  event            TEXT NOT NULL,       -- upper-cased event code
  event_handler_id INTEGER,
  event_id         INTEGER,
  ts               INTEGER,             -- unix seconds, as Bitrix24 sent it
  received_at      INTEGER NOT NULL,    -- unix milliseconds, when it was committed here
  user_id          INTEGER,
  entity_id        INTEGER,
  entity_type_id   INTEGER,
  data             TEXT NOT NULL        -- JSON, token values redacted
);

-- Keyset pagination walks id within each filter, so each index ends with id.
CREATE INDEX events_member_id ON events(member_id, id);
CREATE INDEX events_member_event ON events(member_id, event, id);
CREATE INDEX events_event ON events(event, id);
CREATE INDEX events_entity ON events(entity_id, id);
CREATE INDEX events_ts ON events(ts, id);

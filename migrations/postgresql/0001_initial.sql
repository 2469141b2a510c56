-- 0001 (PostgreSQL): the tables of SPEC §7 as the SQLite migrations 0001-0006 and 0010 leave
-- them, in one file, with PostgreSQL types: times are bigint unix seconds (events.received_at
-- unix milliseconds), data is jsonb. Later features add their own numbered files here, as they
-- do in migrations/ for SQLite; the numbers of the two folders are independent.

CREATE TABLE portals (
  member_id         text PRIMARY KEY,
  domain            text NOT NULL,
  client_endpoint   text,
  server_endpoint   text,
  application_token text,             -- learned at ONAPPINSTALL; NULL after uninstall
  status            text,             -- L local, F free, D demo, T trial, P paid, S subscription
  scope             text,
  installed_at      bigint,
  uninstalled_at    bigint,           -- set by ONAPPUNINSTALL, cleared by a new install
  updated_at        bigint NOT NULL
);
-- ingest.max_new_portals (SPEC §4): installs begun in the last hour, counted by the writer.
CREATE INDEX portals_installed_at ON portals(installed_at) WHERE installed_at IS NOT NULL;

CREATE TABLE tokens (
  member_id           text NOT NULL REFERENCES portals(member_id),
  user_id             bigint NOT NULL,  -- the installing user, or a bot's user id
  access_token        text,
  refresh_token       text,
  expires_at          bigint,           -- when the access token expires
  refresh_token_at    bigint,           -- when the stored refresh token was obtained
  scope               text,
  source              text NOT NULL CHECK (source IN ('install', 'event', 'refresh')),
  updated_at          bigint NOT NULL,
  last_refresh_at     bigint,
  last_refresh_error  text,
  refresh_failures    bigint NOT NULL DEFAULT 0,
  -- Token refresh (SPEC §6; SQLite's 0003): a refresher's lease, and Bitrix24's "dead".
  refresh_lease_until bigint,
  refresh_lease_owner text,
  refresh_dead_at     bigint,
  from_install        integer NOT NULL DEFAULT 0,
  PRIMARY KEY (member_id, user_id)
);

-- Ids come from the identity's sequence, which never hands a value out twice (SPEC §10). The
-- writer takes them under a commit-order lock (storage/postgresql/pg_event_sink.cpp), so that
-- ids become visible in increasing order across receivers (README: the stream cursor).
CREATE TABLE events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  member_id        text NOT NULL,
  domain           text,
  event            text NOT NULL,       -- upper-cased event code
  event_handler_id bigint,
  event_id         text,                -- as Bitrix24 sent it (digits when a number)
  ts               bigint,              -- unix seconds, as Bitrix24 sent it
  received_at      bigint NOT NULL,     -- unix milliseconds, when it was committed here
  user_id          bigint,
  entity_id        bigint,
  entity_type_id   bigint,
  data             jsonb NOT NULL       -- token values redacted
);

-- One index per filter of the query API (SPEC §5), each ending with id for keyset pagination;
-- the same set as SQLite's after its 0002 (tests/pg_query_plan_test.cpp checks every one).
CREATE INDEX events_member_id ON events(member_id, id);
CREATE INDEX events_member_event ON events(member_id, event, id);
CREATE INDEX events_event ON events(event, id);
CREATE INDEX events_ts ON events(ts, id);
CREATE INDEX events_domain ON events(domain, id);
CREATE INDEX events_user ON events(user_id, id);
CREATE INDEX events_entity_type ON events(entity_type_id, id) WHERE entity_type_id IS NOT NULL;
CREATE INDEX events_entity_member ON events(entity_id, member_id, id);

-- Counters (SQLite's 0006), kept by the writer in the transaction that stores or deletes the
-- events: stored events per portal and event code, and per bucket of received time (width 60,
-- 3600 or 86400 s; member_id '' holds the sum over every portal).
CREATE TABLE event_counts (
  member_id text NOT NULL,
  event     text NOT NULL,
  count     bigint NOT NULL,
  PRIMARY KEY (member_id, event)
);
CREATE TABLE event_buckets (
  width     bigint NOT NULL,
  member_id text NOT NULL,
  start     bigint NOT NULL,
  event     text NOT NULL,
  count     bigint NOT NULL,
  PRIMARY KEY (width, member_id, start, event)
);

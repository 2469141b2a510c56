-- 0002: indexes for the query API's filters (SPEC §5) that 0001 does not serve, so that no
-- filter combination reads the whole events table (tests/query_plan_test.cpp checks every one).
-- Each index ends with id for keyset pagination, like those of 0001. Every index costs ingest
-- throughput, so there are only three, one per filter that had none:
--   domain          events carry the domain they were sent with, which a portal can change
--   user_id         the user who triggered the event
--   entity_type_id  set only on smart-process events, hence a partial index: the other events
--                   pay nothing for it on insert
CREATE INDEX events_domain ON events(domain, id);
CREATE INDEX events_user ON events(user_id, id);
CREATE INDEX events_entity_type ON events(entity_type_id, id) WHERE entity_type_id IS NOT NULL;

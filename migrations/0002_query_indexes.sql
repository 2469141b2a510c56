-- 0002: indexes for the query API's filters (SPEC §5), so that no filter combination reads the
-- whole events table (tests/query_plan_test.cpp checks every one). Each index ends with id for
-- keyset pagination, like those of 0001. Every index costs ingest throughput, so 0002 adds one
-- per filter that had none and swaps one that served the common case badly:
--   domain          events carry the domain they were sent with, which a portal can change
--   user_id         the user who triggered the event
--   entity_type_id  set only on smart-process events, hence a partial index: the other events
--                   pay nothing for it on insert
--   entity_id       Bitrix24 numbers entities per portal, so one entity_id occurs in every
--                   portal; an entity's history is asked within one portal. 0001's
--                   (entity_id, id) made that read the entity's events of all portals; with
--                   member_id in the middle it is one seek, and entity_id alone still works.
CREATE INDEX events_domain ON events(domain, id);
CREATE INDEX events_user ON events(user_id, id);
CREATE INDEX events_entity_type ON events(entity_type_id, id) WHERE entity_type_id IS NOT NULL;
DROP INDEX events_entity;
CREATE INDEX events_entity_member ON events(entity_id, member_id, id);

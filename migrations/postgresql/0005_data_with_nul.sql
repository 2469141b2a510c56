-- 0005 (PostgreSQL): event data that jsonb cannot hold. SPEC §4 stores every verified event
-- whatever its content, but jsonb refuses the escape \u0000 ("unsupported Unicode escape
-- sequence"; form bodies carry it as %00). The json type keeps the text exactly, NULs
-- included. So for such an event only, the writer puts the exact text in data_json, and in data
-- the same value with each \u0000 replaced by \ufffd, so that jsonb filters, indexes and psql
-- reports work on every row (storage/postgresql/pg_json_text.h). The store reads
-- coalesce(data_json::text, data::text). NULL for every other event: no extra bytes.
ALTER TABLE events ADD COLUMN data_json json;

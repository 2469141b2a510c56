-- ingest.max_new_portals (SPEC §4): the writer counts the portals whose installation began in
-- the last hour before it registers a new one, inside its transaction; this index makes that
-- count a range of the index instead of a scan of every portal.
CREATE INDEX portals_installed_at ON portals(installed_at) WHERE installed_at IS NOT NULL;

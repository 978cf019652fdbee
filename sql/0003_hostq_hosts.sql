-- hostq schema v3: one row per host that runs a hostq server, for dead-host recovery
-- (docs/operations.md). A server writes heartbeat_at every few seconds and promises, in
-- host_timeout_ms, how long it may stay silent; any live server declares a host silent for longer
-- dead (declared_dead_at), reschedules the jobs it had locked before that moment and sets
-- reaped_at. Hosts without a row (Ruby inst-jobs workers sharing the table) are never touched.
CREATE TABLE IF NOT EXISTS hostq_hosts (
  hostname varchar(255) PRIMARY KEY,
  pid integer,
  heartbeat_at timestamp without time zone NOT NULL,
  host_timeout_ms integer NOT NULL,
  declared_dead_at timestamp without time zone,
  reaped_at timestamp without time zone
);

-- docker-compose.yml: run once by the postgres image's entrypoint on the
-- primary's first start (as superuser postgres), before sample.sql.
-- The same roles and databases that internal/testcluster prepares for
-- `make demo`, plus the replication role and one slot per replica.
CREATE ROLE app LOGIN PASSWORD 'app';                          -- SCRAM-SHA-256
CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'replicator';
CREATE DATABASE app OWNER app;
CREATE DATABASE orders_0 OWNER app;
CREATE DATABASE orders_1 OWNER app;
-- Physical slots: the primary keeps the WAL a replica has not received.
SELECT pg_create_physical_replication_slot('replica1'),
       pg_create_physical_replication_slot('replica2');

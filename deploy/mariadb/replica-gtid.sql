-- docker-compose.yml: run by the mariadb image's entrypoint on the
-- replica's first start, after it has run CHANGE MASTER TO ... (from
-- MARIADB_MASTER_HOST, MARIADB_REPLICATION_USER/PASSWORD) and START REPLICA.
-- Replicate by GTID, starting from the replica's own applied position
-- (the default since MariaDB 10.10; said here so that it does not depend on
-- the version).
STOP REPLICA;
CHANGE MASTER TO MASTER_USE_GTID = slave_pos;
START REPLICA;

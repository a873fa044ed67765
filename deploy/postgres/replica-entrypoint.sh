#!/usr/bin/env bash
# docker-compose.yml: entrypoint of a PostgreSQL streaming replica.
#
# On the first start (empty data directory) it waits for the primary and
# clones it with pg_basebackup: --write-recovery-conf writes standby.signal
# and primary_conninfo (with the connection string below, password
# included), --slot uses the primary's replication slot named like this
# replica (deploy/postgres/00-setup.sql creates replica1 and replica2). Then
# it hands over to the image's own entrypoint, which finds an initialized
# data directory, skips initdb and starts postgres as a hot standby.
#
# Environment: PRIMARY_HOST, PRIMARY_PORT (5432), REPLICA_NAME,
# REPLICATION_USER (replicator), REPLICATION_PASSWORD.
set -euo pipefail

: "${PRIMARY_HOST:?set PRIMARY_HOST}" "${REPLICA_NAME:?set REPLICA_NAME}" "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
PRIMARY_PORT=${PRIMARY_PORT:-5432}
REPLICATION_USER=${REPLICATION_USER:-replicator}
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

as_postgres() {
	if [ "$(id -u)" = 0 ]; then
		gosu postgres "$@"
	else
		"$@"
	fi
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	if [ "$(id -u)" = 0 ]; then
		chown postgres:postgres "$PGDATA"
	fi
	chmod 0700 "$PGDATA"
	echo "replica-entrypoint: waiting for the primary $PRIMARY_HOST"
	until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -d postgres; do
		sleep 1
	done
	echo "replica-entrypoint: pg_basebackup from $PRIMARY_HOST, slot $REPLICA_NAME"
	as_postgres pg_basebackup \
		--pgdata="$PGDATA" \
		--wal-method=stream \
		--write-recovery-conf \
		--slot="$REPLICA_NAME" \
		--checkpoint=fast \
		--dbname="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER password=$REPLICATION_PASSWORD application_name=$REPLICA_NAME"
fi

exec docker-entrypoint.sh "$@"

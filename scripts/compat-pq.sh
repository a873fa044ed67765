#!/usr/bin/env bash
# compat-pq.sh: lib/pq's own test suite (every package of the module), run
# once directly against PostgreSQL and once through Switchyard, on a
# PostgreSQL that internal/testcluster starts (bin/devcluster). Prints
# passed / failed / skipped for both runs and the tests that fail through
# the proxy but pass directly, each marked with its reason from
# testdata/compat/pq-known-failures.txt or as UNEXPLAINED. Exits 1 if a
# test fails through the proxy that passes directly and is not listed, or
# if a pool is not idle after the run.
#
# `make compat-pq` runs it. Environment:
#   POOL_MODE=transaction|session   Switchyard's pool mode (transaction)
#   POOL_SIZE=20                    pool_size
#   RUN=regexp                      only these tests (go test -run)
#   KEEP=1                          keep the work directory (logs)
#
# The servers and both runs of the suite live in a network namespace of
# their own (unshare --net; needs root): only a loopback interface, so
# nothing the suite does can leave 127.0.0.0/8 (it parses connection
# strings naming example.com and the like). The module and its build come
# first, outside it.
#
# Through the proxy the suite runs with PGPORT=6432: lib/pq's
# internal/pqtest takes that port for PgBouncer and skips the tests its
# maintainers skip for a transaction pooler (pqtest.SkipPgbouncer), so the
# proxy is judged by the same rules as PgBouncer. In the namespace the port
# is always free. The direct run uses the server's own port, so it runs
# those tests too.
#
# PGHOST=localhost as in lib/pq's CI (TestNewConnector and TestService
# expect it); the namespace's /etc/hosts maps localhost to 127.0.0.1 only.
#
# Server set-up follows lib/pq's testdata/postgres: roles pqgo (superuser,
# trust), pqgomd5 (md5 verifier, md5), pqgoscram (SCRAM, scram-sha-256),
# pqgopassword (plain "password" method), all with password 'wordpass',
# database pqgo. The server has no TLS here, so the tests that need the
# SSL users and certificates (pqgossl, pqgosslcert, host "postgres") are
# skipped in both runs: $SKIP below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DRIVER=github.com/lib/pq
DRIVER_VERSION=v1.12.3
MODE=${POOL_MODE:-transaction}
SIZE=${POOL_SIZE:-20}
KNOWN=$ROOT/testdata/compat/pq-known-failures.txt
# TLS: the server runs without ssl = on and lib/pq's certificates (and
# TestSSLKeyPermissions in internal/pqutil expects a world-readable key to
# be refused, which it is not as root).
SKIP='^TestSSL'
GO=${GO:-go}
export GOFLAGS=-buildvcs=false

say() { printf 'compat-pq: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- inner --
# In the network namespace: start PostgreSQL and Switchyard, run the suite
# twice, report.
if [[ ${1:-} == --inner ]]; then
	WORK=$2
	export GOPROXY=off GOFLAGS="-buildvcs=false -mod=mod"
	ip link set lo up
	CLUSTER_PID=
	PROXY_PID=
	cleanup() {
		local pid
		for pid in $PROXY_PID $CLUSTER_PID; do
			kill -TERM "$pid" 2>/dev/null || true
		done
		for pid in $PROXY_PID $CLUSTER_PID; do
			for _ in $(seq 1 300); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null || true
		done
	}
	trap cleanup EXIT

	say "starting PostgreSQL"
	"$WORK/devcluster" -mariadb=false -pg-replicas=-1 -dir "$WORK/state" \
		>"$WORK/devcluster.env" 2>"$WORK/devcluster.log" &
	CLUSTER_PID=$!
	for _ in $(seq 1 1800); do
		grep -q '^READY=1' "$WORK/devcluster.env" 2>/dev/null && break
		kill -0 "$CLUSTER_PID" 2>/dev/null || {
			cat "$WORK/devcluster.log" >&2
			exit 1
		}
		sleep 0.1
	done
	grep -q '^READY=1' "$WORK/devcluster.env" || {
		say "PostgreSQL did not start"
		exit 1
	}
	PG=$(sed -n 's/^PG_PRIMARY=//p' "$WORK/devcluster.env")
	PGDIR=$(sed -n 's/^PG_DIR=//p' "$WORK/devcluster.env")
	HBA=$(find "$PGDIR" -maxdepth 2 -name pg_hba.conf | head -n1)
	psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PG##*:}" -U postgres "$@"; }
	psql -d postgres <<'EOF'
CREATE ROLE pqgo SUPERUSER LOGIN;
CREATE DATABASE pqgo OWNER pqgo;
CREATE ROLE pqgossl LOGIN;
CREATE ROLE pqgosslcert LOGIN;
SET password_encryption = 'scram-sha-256';
CREATE ROLE pqgopassword LOGIN PASSWORD 'wordpass';
CREATE ROLE pqgoscram LOGIN PASSWORD 'wordpass';
CREATE ROLE pqgomd5 LOGIN PASSWORD 'wordpass';
-- as lib/pq's 20-config.sql: an md5 verifier for pqgomd5
UPDATE pg_authid SET rolpassword = 'md5' || md5('wordpasspqgomd5') WHERE rolname = 'pqgomd5';
EOF
	# lib/pq's pg_hba.conf, before testcluster's lines; hostnossl lines
	# become host (there is no TLS).
	{
		cat <<'EOF'
# compat-pq: lib/pq's testdata/postgres/pg_hba.conf
host  all  pqgomd5       127.0.0.1/32  md5
host  all  pqgopassword  127.0.0.1/32  password
host  all  pqgoscram     127.0.0.1/32  scram-sha-256
host  all  postgres      127.0.0.1/32  trust
host  all  pqgossl       127.0.0.1/32  reject
host  all  pqgosslcert   127.0.0.1/32  reject
host  all  all           127.0.0.1/32  trust
EOF
		cat "$HBA"
	} >"$HBA.new"
	chown --reference="$HBA" "$HBA.new"
	chmod --reference="$HBA" "$HBA.new"
	mv "$HBA.new" "$HBA"
	psql -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
	for _ in $(seq 1 100); do
		PGPASSWORD=wordpass command psql -X -h 127.0.0.1 -p "${PG##*:}" -U pqgopassword -d pqgo -c 'SELECT 1' >/dev/null 2>&1 && break
		sleep 0.1
	done

	PROXY_PORT=6432
	ADMIN_PORT=6433
	cat >"$WORK/config.toml" <<EOF
[proxy]
postgres_listen = "127.0.0.1:$PROXY_PORT"
mysql_listen = ""
admin_listen = "127.0.0.1:$ADMIN_PORT"
max_client_conns = 10000
shutdown_timeout = "5s"
# the suite logs in with wrong passwords on purpose
auth_failures_per_minute = 0

[defaults]
pool_mode = "$MODE"
pool_size = $SIZE
min_pool_size = 0
query_wait_timeout = "30s"
connect_timeout = "10s"
# pqgopassword logs in to the server with the plain "password" method;
# the server is on loopback
server_allow_cleartext_password = true

[[users]]
name = "pqgo"
auth = "trust"

[[users]]
name = "pqgomd5"
password = "wordpass"
auth = "md5"

[[users]]
name = "pqgoscram"
password = "wordpass"

[[users]]
name = "pqgopassword"
password = "wordpass"

[[clusters]]
name = "pqgo"
protocol = "postgres"
database = "pqgo"
primary = "$PG"
EOF
	"$WORK/switchyard" -config "$WORK/config.toml" >"$WORK/switchyard.log" 2>&1 &
	PROXY_PID=$!
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break
		sleep 0.1
	done

	# run NAME PORT: the suite against 127.0.0.1:PORT; results in
	# $WORK/NAME.results (lines "PASS|FAIL|SKIP pkg TestName", top-level
	# tests only).
	run() {
		local name=$1 port=$2 start=$SECONDS
		say "running the suite $name (localhost:$port)"
		local try
		for try in 1 2 3 4; do
			(
				cd "$WORK/driver"
				env -u PGPASSWORD -u PGSERVICE -u PGSERVICEFILE -u PGPASSFILE \
					PGHOST=localhost PGPORT=$port PGUSER=pqgo PGDATABASE=pqgo PGSSLMODE=disable \
					PGCONNECT_TIMEOUT=20 \
					timeout 25m $GO test -count=1 -json -timeout 20m -skip "$SKIP" ${RUN:+-run "$RUN"} ./... >"$WORK/$name.json" 2>&1 || true
			)
			# The listener tests wait 100 ms for an event and panic
			# (ending the package's run) when it is late, which happens
			# on a busy machine, directly too: run again without the
			# test that panicked (for this run and the next), and say so.
			local panicked
			panicked=$(jq -r 'select(.Action == "output" and .Test != null and (.Output | startswith("panic: "))) | .Test | split("/")[0]' "$WORK/$name.json" 2>/dev/null | head -n1)
			[[ -n $panicked ]] || break
			say "$name: $panicked panicked (a timing test on a busy machine) and ended its package's run: running again without it"
			SKIP="$SKIP|^$panicked\$"
			SKIPPED_PANIC+=" $panicked"
		done
		jq -r 'select(.Test != null and (.Test | contains("/") | not) and (.Action == "pass" or .Action == "fail" or .Action == "skip")) | "\(.Action | ascii_upcase) \(.Test)"' \
			"$WORK/$name.json" 2>/dev/null | sort -u -k2 >"$WORK/$name.results" || true
		if grep -q '^panic: test timed out' "$WORK/$name.json"; then
			say "$name: the suite timed out"
		fi
		printf '%s: %d passed, %d failed, %d skipped (%ds)\n' "$name" \
			"$(grep -c '^PASS' "$WORK/$name.results" || true)" \
			"$(grep -c '^FAIL' "$WORK/$name.results" || true)" \
			"$(grep -c '^SKIP' "$WORK/$name.results" || true)" $((SECONDS - start))
	}

	SKIPPED_PANIC=
	run direct "${PG##*:}"
	run proxy "$PROXY_PORT"

	[[ -z $SKIPPED_PANIC ]] || echo "skipped after a panic (timing):$SKIPPED_PANIC"
	status=0
	echo "fail through the proxy, pass directly ($MODE mode):"
	while read -r _ t; do
		grep -qx "PASS $t" "$WORK/direct.results" || continue
		why=$({ sed -n "s/^\(any\|$MODE\)[[:space:]]\{1,\}$t[[:space:]]\{1,\}//p" "$KNOWN" 2>/dev/null || true; } | head -n1)
		if [[ -z $why ]]; then
			why=UNEXPLAINED
			status=1
			jq -r "select(.Test != null and (.Test | startswith(\"$t\")) and .Action == \"output\") | .Output" "$WORK/proxy.json" |
				grep -v '^=== \|^--- PASS\|^[[:space:]]*$' | head -n 20 | sed 's/^/      /'
		fi
		echo "  $t: $why"
	done < <(grep '^FAIL' "$WORK/proxy.results")

	# After the suite every pool must be idle: no leaked server connection.
	sleep 1
	st=$(curl -fsS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/status" 2>/dev/null || true)
	echo "pools after the run:"
	echo "$st" | jq -r '.pools[] | "  \(.cluster) \(.node) user=\(.user): size \(.size), active \(.active), idle \(.idle), waiting \(.waiting), leases \(.leases), wait timeouts \(.wait_timeouts)"' 2>/dev/null || echo "  $st"
	if echo "$st" | jq -e '[.pools[] | .active] | any(. > 0)' >/dev/null 2>&1; then
		say "a pool still has active server connections after the suite"
		status=1
	fi
	exit $status
fi

# ---------------------------------------------------------------- outer --
[[ $(id -u) == 0 ]] || {
	say "needs root (unshare --net for a loopback-only network namespace)"
	exit 1
}
export GOPROXY=${GOPROXY:-$($GO env GOPROXY | sed -e 's/,direct$//' -e 's/|direct$//')}
WORK=$(mktemp -d /tmp/compat-pq.XXXXXX)
chmod 755 "$WORK" # PostgreSQL runs as postgres under it
cleanup_outer() {
	if [[ ${KEEP:-} == 1 ]]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup_outer EXIT

say "building switchyard and devcluster"
$GO build -o "$WORK/switchyard" ./cmd/switchyard
$GO build -o "$WORK/devcluster" ./internal/cmd/devcluster

say "fetching $DRIVER@$DRIVER_VERSION from the module proxy"
dir=$($GO mod download -json "$DRIVER@$DRIVER_VERSION" | jq -r .Dir)
[[ -d $dir ]] || {
	say "no module directory for $DRIVER@$DRIVER_VERSION"
	exit 1
}
cp -r "$dir" "$WORK/driver"
chmod -R u+w "$WORK/driver"
(cd "$WORK/driver" && $GO test -count=1 -exec /bin/true ./... >/dev/null) # fetch its dependencies, compile once (without running: its TestMain needs a server)

# unshare --net: loopback only; the inner run stops what it started.
unshare --net -- bash "$ROOT/scripts/compat-pq.sh" --inner "$WORK"

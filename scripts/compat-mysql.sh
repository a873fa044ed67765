#!/usr/bin/env bash
# compat-mysql.sh: go-sql-driver/mysql's own test suite, run once directly
# against MariaDB and once through Switchyard, on a MariaDB that
# internal/testcluster starts (bin/devcluster, loopback only). Prints
# passed / failed / skipped for both runs and the tests that fail through
# the proxy but pass directly, each marked with its reason from
# testdata/compat/mysql-known-failures.txt or as UNEXPLAINED. Exits 1 if a
# test fails through the proxy that passes directly and is not listed, or
# if a pool is not idle after the run.
#
# `make compat-mysql` runs it. Environment:
#   POOL_MODE=transaction|session   Switchyard's pool mode (transaction)
#   POOL_SIZE=20                    pool_size
#   RUN=regexp                      only these tests (go test -run)
#   KEEP=1                          keep the work directory (logs)
#
# The server runs with performance_schema on (TestConnectionAttributes)
# and max_allowed_packet = 64M, as the driver's own CI sets it
# (TestLongData). TestConnectorReturnsTimeout is always skipped: it dials
# 1.1.1.1, and nothing here may leave the loopback network.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DRIVER=github.com/go-sql-driver/mysql
DRIVER_VERSION=v1.10.1
MODE=${POOL_MODE:-transaction}
SIZE=${POOL_SIZE:-20}
KNOWN=$ROOT/testdata/compat/mysql-known-failures.txt
SKIP='^TestConnectorReturnsTimeout$'
GO=${GO:-go}
export GOPROXY=${GOPROXY:-$($GO env GOPROXY | sed -e 's/,direct$//' -e 's/|direct$//')}
export GOFLAGS=-buildvcs=false

say() { printf 'compat-mysql: %s\n' "$*" >&2; }

WORK=$(mktemp -d /tmp/compat-mysql.XXXXXX)
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
	if [[ ${KEEP:-} == 1 ]]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

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
(cd "$WORK/driver" && $GO test -count=1 -run XXX . >/dev/null) # fetch its dependencies, compile once

say "starting MariaDB (performance_schema on, max_allowed_packet 64M)"
"$WORK/devcluster" -pg=false -mariadb-replicas=-1 \
	-mariadb-arg=--performance-schema=ON -mariadb-arg=--max-allowed-packet=64M \
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
	say "MariaDB did not start"
	exit 1
}
MY=$(sed -n 's/^MY_PRIMARY=//p' "$WORK/devcluster.env")
mariadb -h "${MY%:*}" -P "${MY##*:}" -u root --protocol=tcp -e "
CREATE DATABASE gotest;
CREATE USER 'gotest'@'%' IDENTIFIED BY 'gotest';
GRANT ALL ON *.* TO 'gotest'@'%' WITH GRANT OPTION;"

# Client-facing TLS for the suite's tls=skip-verify tests.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 2 \
	-keyout "$WORK/proxy.key" -out "$WORK/proxy.crt" 2>/dev/null

PROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/config.toml" <<EOF
[proxy]
postgres_listen = ""
mysql_listen = "127.0.0.1:$PROXY_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
shutdown_timeout = "5s"
tls_cert = "$WORK/proxy.crt"
tls_key = "$WORK/proxy.key"

[defaults]
pool_mode = "$MODE"
pool_size = $SIZE
query_wait_timeout = "30s"

[[users]]
name = "gotest"
password = "gotest"

[[clusters]]
name = "gotest"
protocol = "mysql"
database = "gotest"
primary = "$MY"
EOF
"$WORK/switchyard" -config "$WORK/config.toml" >"$WORK/switchyard.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break
	sleep 0.1
done

# run NAME ADDR: the suite against ADDR; results in $WORK/NAME.results
# (lines "PASS|FAIL|SKIP TestName", top-level tests only).
run() {
	local name=$1 addr=$2 start=$SECONDS
	say "running the suite $name ($addr)"
	(
		cd "$WORK/driver"
		MYSQL_TEST_USER=gotest MYSQL_TEST_PASS=gotest MYSQL_TEST_ADDR=$addr \
			MYSQL_TEST_DBNAME=gotest MYSQL_TEST_CONCURRENT=1 \
			$GO test -count=1 -json -timeout 20m -skip "$SKIP" ${RUN:+-run "$RUN"} . >"$WORK/$name.json" 2>&1 || true
	)
	jq -r 'select(.Test != null and (.Test | contains("/") | not) and (.Action == "pass" or .Action == "fail" or .Action == "skip")) | "\(.Action | ascii_upcase) \(.Test)"' \
		"$WORK/$name.json" 2>/dev/null | sort -k2 >"$WORK/$name.results" || true
	printf '%s: %d passed, %d failed, %d skipped (%ds)\n' "$name" \
		"$(grep -c '^PASS' "$WORK/$name.results" || true)" \
		"$(grep -c '^FAIL' "$WORK/$name.results" || true)" \
		"$(grep -c '^SKIP' "$WORK/$name.results" || true)" $((SECONDS - start))
}

run direct "$MY"
run proxy "127.0.0.1:$PROXY_PORT"

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
st=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/status" 2>/dev/null || true)
echo "pools after the run:"
echo "$st" | jq -r '.pools[] | "  \(.cluster) \(.node) user=\(.user): size \(.size), active \(.active), idle \(.idle), waiting \(.waiting), leases \(.leases), wait timeouts \(.wait_timeouts)"' 2>/dev/null || echo "  $st"
if echo "$st" | jq -e '[.pools[] | .active] | any(. > 0)' >/dev/null 2>&1; then
	say "a pool still has active server connections after the suite"
	status=1
fi
exit $status

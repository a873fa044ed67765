#!/usr/bin/env bash
# The local demo: `make demo` (scripts/demo.sh start) and `make demo-stop`
# (scripts/demo.sh stop); `scripts/demo.sh status` says what runs.
#
# start: starts bin/devcluster in the background (a PostgreSQL primary with
# two replicas on 127.0.0.1:15432/15433/15434 and a MariaDB primary with a
# replica on 127.0.0.1:13306/13307, the servers of config.toml), loads the
# sample schema (deploy/sql/*-sample.sql), starts bin/switchyard with
# config.toml in the background, waits until it accepts, and prints the DSNs
# and example commands. Everything lives under .demo/ in the repository:
# pid files, logs (devcluster.log, switchyard.log, postgres/n*.log,
# mariadb/n*.log) and the data directories. No system service is used.
# `make demo` installs the packages (scripts/install-deps.sh) and builds
# bin/ first; run this script through it.
#
# A second start while the demo runs says so and prints the same help; if
# only part of it runs, it stops that part and starts again.
#
# stop: SIGTERM to the proxy (it drains) and to devcluster (it shuts the
# servers down), SIGKILL after a time limit, then checks that no process
# of the demo is left. The logs and data stay in .demo/ until the next start.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
STATE=$ROOT/.demo
CONFIG=$ROOT/config.toml
PROXY=$ROOT/bin/switchyard
DEVCLUSTER=$ROOT/bin/devcluster
PROXY_PID=$STATE/switchyard.pid
CLUSTER_PID=$STATE/devcluster.pid
CLUSTER_ENV=$STATE/devcluster.env

# The servers config.toml points at (its [[clusters]] primary/replicas).
PG_PORTS=15432,15433,15434
MY_PORTS=13306,13307

say() { printf 'demo: %s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

# conf_value KEY prints the quoted value of KEY in config.toml's [proxy].
conf_value() {
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$CONFIG" | head -n1
}
PG_LISTEN=$(conf_value postgres_listen)
MY_LISTEN=$(conf_value mysql_listen)
ADMIN_LISTEN=$(conf_value admin_listen)

# alive PIDFILE NAME: the process named in PIDFILE runs and is NAME (its
# binary may have been rebuilt since: "... (deleted)").
alive() {
	local pid exe
	[[ -r $1 ]] || return 1
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	exe=${exe% (deleted)}
	[[ $exe == */"$2" ]]
}

# accepts HOST:PORT: something accepts TCP connections there.
accepts() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# stop_pid PIDFILE NAME SECONDS: SIGTERM, wait, SIGKILL.
stop_pid() {
	local file=$1 name=$2 secs=$3 pid i
	alive "$file" "$name" || {
		rm -f "$file"
		return 0
	}
	pid=$(<"$file")
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name did not stop within ${secs}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$file"
}

# demo_dirs prints the directories the demo's servers run in: .demo and
# where its cluster directories point (devcluster may place them elsewhere).
demo_dirs() {
	local d
	printf '%s\n' "$STATE"
	for d in "$STATE"/postgres "$STATE"/mariadb; do
		[[ -L $d ]] && readlink -f "$d"
	done
	return 0
}

# leftovers prints the pids of the demo's processes: the proxy and
# devcluster as this script starts them, and servers whose command line
# names a demo directory (postgres -D .demo/postgres/n0, mariadbd
# --datadir=...). Other clusters (tests: /dev/shm/sytc...) do not match.
leftovers() {
	local dirs p cmd d
	mapfile -t dirs < <(demo_dirs)
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		if [[ $cmd == "$PROXY -config $CONFIG "* || $cmd == "$DEVCLUSTER -dir $STATE "* ]]; then
			printf '%s\n' "$p"
			continue
		fi
		for d in "${dirs[@]}"; do
			if [[ $cmd == *" $d/"* || $cmd == *"=$d/"* ]]; then
				printf '%s\n' "$p"
				break
			fi
		done
	done
}

do_stop() {
	stop_pid "$PROXY_PID" switchyard 40
	stop_pid "$CLUSTER_PID" devcluster 120
	local left
	left=$(leftovers)
	if [[ -n $left ]]; then
		say "left over from the demo, killing: ${left//$'\n'/ }"
		# shellcheck disable=SC2086
		kill -TERM $left 2>/dev/null || true
		sleep 2
		left=$(leftovers)
		# shellcheck disable=SC2086
		[[ -z $left ]] || kill -KILL $left 2>/dev/null || true
		sleep 0.5
		left=$(leftovers)
		[[ -z $left ]] || die "still running: ${left//$'\n'/ }"
	fi
	rm -f "$CLUSTER_ENV"
}

print_help() {
	local my_note=""
	cat <<EOF

Switchyard demo is running. State and logs: .demo/ (switchyard.log, devcluster.log, postgres/n0.log, ...)

  PostgreSQL, through the proxy:  postgres://app:app@$PG_LISTEN/app
  MySQL, through the proxy:       app:app@tcp($MY_LISTEN)/app
  Admin (status JSON, metrics):   http://$ADMIN_LISTEN/status   http://$ADMIN_LISTEN/metrics

  Behind it (config.toml):
    PostgreSQL primary 127.0.0.1:15432, replicas 127.0.0.1:15433 and :15434
      databases app (table accounts), orders_0 and orders_1 (tables customers, orders: the 2-shard "orders" set)
    MariaDB primary 127.0.0.1:13306, replica 127.0.0.1:13307
      database app (table accounts)
  served_by below is the port of the server that answered: 15432 or 13306
  the primary, 15433/15434 or 13307 a replica.

Try:
  psql "postgres://app:app@$PG_LISTEN/app" -c "INSERT INTO accounts (owner, balance) VALUES ('you', 42) RETURNING id, owner, balance"
  psql "postgres://app:app@$PG_LISTEN/app" -c "SELECT inet_server_port() AS served_by, pg_is_in_recovery() AS is_replica, count(*) AS accounts FROM accounts"
  curl -s http://$ADMIN_LISTEN/status
EOF
	if [[ -n $MY_LISTEN ]] && accepts "$MY_LISTEN"; then
		cat <<EOF
  mariadb -h ${MY_LISTEN%:*} -P ${MY_LISTEN##*:} --protocol=tcp -u app -papp app -e "SELECT @@port AS served_by, count(*) AS accounts FROM accounts"
EOF
	else
		my_note=1
	fi
	echo
	# The sharded set, as far as this build of the proxy serves it.
	local out
	if out=$(PGCONNECT_TIMEOUT=5 psql -X -At "postgres://app:app@$PG_LISTEN/orders" -c "SELECT 1" 2>&1); then
		echo "Sharded: postgres://app:app@$PG_LISTEN/orders (shards orders_0, orders_1)"
	else
		echo "Note: database \"orders\" (the 2-shard set) is not served by this build of the proxy yet:"
		echo "      ${out//$'\n'/ }"
	fi
	echo
	if [[ -n $my_note ]]; then
		echo "Note: this build of the proxy does not listen for MySQL clients on ${MY_LISTEN:-(mysql_listen unset)} yet;"
		echo "      MariaDB itself answers on 127.0.0.1:13306 (mariadb -h 127.0.0.1 -P 13306 -u app -papp app)."
		echo
	fi
	echo "Stop it all with: make demo-stop"
}

do_start() {
	[[ -x $PROXY && -x $DEVCLUSTER ]] || die "bin/switchyard and bin/devcluster are missing: run \`make demo\`"
	local have_proxy=0 have_cluster=0
	alive "$PROXY_PID" switchyard && have_proxy=1
	alive "$CLUSTER_PID" devcluster && have_cluster=1
	if ((have_proxy && have_cluster)); then
		say "already running (proxy pid $(<"$PROXY_PID"), devcluster pid $(<"$CLUSTER_PID")); \`make demo-stop\` stops it"
		print_help
		return 0
	fi
	if ((have_proxy || have_cluster)); then
		say "only part of the demo runs; stopping it and starting again"
	fi
	do_stop

	for cmd in psql mariadb; do
		command -v "$cmd" >/dev/null || die "$cmd not found: run \`make demo\` (it installs the packages)"
	done
	if ! command -v curl >/dev/null; then
		if ((EUID == 0)) && command -v apt-get >/dev/null; then
			say "installing curl (for the status page example)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl >/dev/null ||
				{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl >/dev/null; } ||
				say "could not install curl; the status page is at http://$ADMIN_LISTEN/status"
		else
			say "curl is not installed; the status page is at http://$ADMIN_LISTEN/status"
		fi
	fi
	local a p
	for a in "$PG_LISTEN" "$MY_LISTEN" "$ADMIN_LISTEN"; do
		[[ -n $a ]] || continue
		accepts "$a" && die "$a (config.toml) is in use by another program; stop it, or change config.toml"
	done
	for p in ${PG_PORTS//,/ } ${MY_PORTS//,/ }; do
		accepts "127.0.0.1:$p" && die "127.0.0.1:$p is in use by another program (the demo's servers need it)"
	done

	mkdir -p "$STATE"
	# Stopped on the way (Ctrl-C, an error): leave nothing running.
	trap 'echo; say "interrupted; stopping what started"; do_stop; exit 1' INT TERM
	trap 'rc=$?; if ((rc != 0)); then say "start failed; stopping what started"; do_stop || true; fi' EXIT

	say "starting PostgreSQL (primary + 2 replicas) and MariaDB (primary + replica) under .demo/"
	rm -f "$CLUSTER_ENV"
	setsid "$DEVCLUSTER" -dir "$STATE" -pg-ports "$PG_PORTS" -mariadb-ports "$MY_PORTS" -pidfile "$CLUSTER_PID" \
		>"$CLUSTER_ENV" 2>"$STATE/devcluster.log" </dev/null &
	local cpid=$! i
	for ((i = 0; i < 1800; i++)); do
		grep -q '^READY=1$' "$CLUSTER_ENV" 2>/dev/null && break
		if ! kill -0 "$cpid" 2>/dev/null; then
			tail -n 60 "$STATE/devcluster.log" >&2
			die "devcluster failed (log above, all of it in .demo/devcluster.log)"
		fi
		sleep 0.1
	done
	grep -q '^READY=1$' "$CLUSTER_ENV" || die "the servers did not start within 180s; see .demo/devcluster.log"
	local PG_BINDIR
	PG_BINDIR=$(sed -n 's/^PG_BINDIR=//p' "$CLUSTER_ENV")

	say "loading the sample schema (deploy/sql/postgres-sample.sql, deploy/sql/mariadb-sample.sql)"
	"$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p 15432 -U postgres -d postgres -f deploy/sql/postgres-sample.sql >"$STATE/sample.log" 2>&1 ||
		{ cat "$STATE/sample.log" >&2; die "loading deploy/sql/postgres-sample.sql failed"; }
	mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P 13306 -u root <deploy/sql/mariadb-sample.sql >>"$STATE/sample.log" 2>&1 ||
		{ cat "$STATE/sample.log" >&2; die "loading deploy/sql/mariadb-sample.sql failed"; }

	say "starting the proxy: bin/switchyard -config config.toml (log: .demo/switchyard.log)"
	setsid "$PROXY" -config "$CONFIG" >"$STATE/switchyard.log" 2>&1 </dev/null &
	local ppid=$!
	echo "$ppid" >"$PROXY_PID"
	for ((i = 0; i < 300; i++)); do
		accepts "$PG_LISTEN" && { [[ -z $ADMIN_LISTEN ]] || accepts "$ADMIN_LISTEN"; } && break
		if ! kill -0 "$ppid" 2>/dev/null; then
			cat "$STATE/switchyard.log" >&2
			die "the proxy exited (log above, in .demo/switchyard.log)"
		fi
		sleep 0.1
	done
	accepts "$PG_LISTEN" || die "the proxy does not accept on $PG_LISTEN after 30s; see .demo/switchyard.log"
	trap - INT TERM EXIT
	print_help
}

do_status() {
	local ok=0
	if alive "$PROXY_PID" switchyard; then
		say "proxy runs (pid $(<"$PROXY_PID"))"
		ok=$((ok + 1))
	else
		say "proxy does not run"
	fi
	if alive "$CLUSTER_PID" devcluster; then
		say "devcluster runs (pid $(<"$CLUSTER_PID")): $(grep -v READY "$CLUSTER_ENV" 2>/dev/null | tr '\n' ' ')"
		ok=$((ok + 1))
	else
		say "devcluster does not run"
	fi
	((ok == 2))
}

case ${1:-start} in
start) do_start ;;
stop)
	do_stop
	say "stopped; nothing of the demo runs. Logs and data stay in .demo/ until the next \`make demo\`."
	;;
status) do_status ;;
*) die "usage: $0 start|stop|status" ;;
esac

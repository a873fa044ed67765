#!/usr/bin/env bash
# The fleet demo: `make demo-fleet` (scripts/demo-fleet.sh start) and
# `make demo-fleet-stop` (scripts/demo-fleet.sh stop).
#
# start: runs `make demo`'s servers (scripts/demo.sh start: devcluster and
# the single proxy of config.toml), then three more instances of the proxy
# from config.toml with their own listeners and instance_id 1..3, peers of
# each other, and two round-robin TCP balancers in front of them
# (bin/fleetlb): PostgreSQL on 127.0.0.1:6440, MySQL on 127.0.0.1:6050.
# Everything is on loopback and lives under .demo/fleet/ (configs, pid
# files, logs). It prints how to try a cancel and a KILL across instances.
#
# stop: SIGTERM to the instances and balancers (the servers and the single
# proxy stay: `make demo-stop` stops them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DIR=$ROOT/.demo/fleet
PROXY=$ROOT/bin/switchyard
LB=$ROOT/bin/fleetlb
TOKEN=demo-fleet-admin-token-0123456789
PG_LB=127.0.0.1:6440
MY_LB=127.0.0.1:6050
N=3

say() { printf 'demo-fleet: %s\n' "$*"; }
die() {
	printf 'demo-fleet: error: %s\n' "$*" >&2
	exit 1
}
pg_port() { echo $((6440 + $1)); }
my_port() { echo $((6050 + $1)); }
admin_port() { echo $((9940 + $1)); }

accepts() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

alive() {
	[[ -r $1 ]] && kill -0 "$(<"$1")" 2>/dev/null
}

# config I writes instance I's file: config.toml with its own listeners,
# the fleet's admin token, and every instance as a peer (the entry of its
# own id is ignored, so all files list the same peers).
config() {
	local i=$1 j
	sed -e "s/^postgres_listen *=.*/postgres_listen = \"127.0.0.1:$(pg_port "$i")\"/" \
		-e "s/^mysql_listen *=.*/mysql_listen = \"127.0.0.1:$(my_port "$i")\"/" \
		-e "s/^admin_listen *=.*/admin_listen = \"127.0.0.1:$(admin_port "$i")\"\nadmin_token = \"$TOKEN\"/" \
		"$ROOT/config.toml"
	for ((j = 1; j <= N; j++)); do
		printf '\n[[peers]]\ninstance_id = %d\npostgres_listen = "127.0.0.1:%d"\nmysql_listen = "127.0.0.1:%d"\nadmin_listen = "127.0.0.1:%d"\n' \
			"$j" "$(pg_port "$j")" "$(my_port "$j")" "$(admin_port "$j")"
	done
}

# do_stop: SIGTERM to each process of the fleet, SIGKILL to any still
# there after 10 s (an instance drains up to shutdown_timeout).
do_stop() {
	local f pids=() pid i
	for f in "$DIR"/*.pid; do
		[[ -e $f ]] || continue
		if alive "$f"; then
			pid=$(<"$f")
			say "stopping $(basename "$f" .pid) (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		rm -f "$f"
	done
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
}

do_start() {
	[[ -x $PROXY && -x $LB ]] || die "bin/switchyard and bin/fleetlb are missing: run \`make demo-fleet\`"
	bash scripts/demo.sh start >/dev/null
	do_stop
	mkdir -p "$DIR"
	local i
	for ((i = 1; i <= N; i++)); do
		config "$i" >"$DIR/switchyard-$i.toml"
		"$PROXY" check -config "$DIR/switchyard-$i.toml" >/dev/null
		"$PROXY" -config "$DIR/switchyard-$i.toml" -instance-id "$i" >"$DIR/switchyard-$i.log" 2>&1 &
		echo $! >"$DIR/switchyard-$i.pid"
	done
	"$LB" -listen "$PG_LB" $(for ((i = 1; i <= N; i++)); do echo "127.0.0.1:$(pg_port "$i")"; done) >"$DIR/lb-postgres.log" 2>&1 &
	echo $! >"$DIR/lb-postgres.pid"
	"$LB" -listen "$MY_LB" $(for ((i = 1; i <= N; i++)); do echo "127.0.0.1:$(my_port "$i")"; done) >"$DIR/lb-mysql.log" 2>&1 &
	echo $! >"$DIR/lb-mysql.pid"
	for ((i = 1; i <= 100; i++)); do
		accepts "127.0.0.1:$(pg_port 3)" && accepts "$PG_LB" && accepts "$MY_LB" && break
		sleep 0.1
	done
	accepts "$PG_LB" || die "the fleet did not start; see $DIR/*.log"
	cat <<EOF

Switchyard fleet demo: three instances (instance_id 1, 2, 3) behind a round-robin balancer.
Configs and logs: .demo/fleet/

  PostgreSQL, through the balancer:  postgres://app:app@$PG_LB/app     (instances :6441 :6442 :6443)
  MySQL, through the balancer:       app:app@tcp($MY_LB)/app           (instances :6051 :6052 :6053)
  Admin of each instance:            http://127.0.0.1:9941/status  :9942  :9943

Try a cancel across instances: run a long query, press Ctrl+C. psql sends the
cancel over a new connection, which the balancer gives to the next instance;
that instance forwards it to the one running the query:
  psql "postgres://app:app@$PG_LB/app" -c "SELECT pg_sleep(30)"
  curl -s http://127.0.0.1:9941/metrics http://127.0.0.1:9942/metrics http://127.0.0.1:9943/metrics | grep '^switchyard_fleet_cancels_total'

MySQL KILL across instances: the connection id a client gets carries its
instance's id; Ctrl+C in the mariadb client sends KILL QUERY <that id> over a
new connection, which the balancer gives to another instance:
  mariadb -h 127.0.0.1 -P ${MY_LB##*:} --protocol=tcp -u app -papp app -e "SELECT SLEEP(30)"

A read-your-writes token from one instance, honoured by another:
  psql "postgres://app:app@127.0.0.1:6441/app" -c "INSERT INTO accounts (owner, balance) VALUES ('fleet', 1)" -c "SHOW switchyard.write_position"
  psql "postgres://app:app@127.0.0.1:6442/app" -c "SET switchyard.read_after = '<token>'" -c "SELECT count(*) FROM accounts WHERE owner = 'fleet'"

Reload every instance, each one's result and shard map versions:
  bin/switchyard reload -config .demo/fleet/switchyard-1.toml --all

Stop the fleet with: make demo-fleet-stop   (the servers: make demo-stop)
EOF
}

case ${1:-start} in
start) do_start ;;
stop) do_stop ;;
*) die "usage: $0 start|stop" ;;
esac

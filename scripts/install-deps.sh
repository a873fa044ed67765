#!/usr/bin/env bash
# Installs what the tests and benchmarks need on Debian/Ubuntu:
#   PostgreSQL server + client + contrib (initdb, postgres, pg_basebackup,
#   psql, pgbench), MariaDB server + client, PgBouncer, sysbench.
#
# Idempotent: when everything is present it only checks files and exits
# (well under a second). Otherwise it runs apt-get update and installs the
# missing packages, as root (re-running itself with sudo when not root).
#
# The tests start their own servers on their own ports (internal/testcluster);
# they never use the system services. If installing a package started its
# system service (PostgreSQL on 5432, MariaDB on 3306, PgBouncer on 6432),
# this script stops that service again. Services that were already installed
# are left alone.
set -euo pipefail

say() { printf 'install-deps: %s\n' "$*"; }

# first_match GLOB... prints the first existing path.
first_match() {
	local p
	for p in "$@"; do
		if [[ -e $p ]]; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	return 1
}

# find_cmd NAME prints the path of NAME in PATH or in the sbin directories
# (not always in a normal user's PATH).
find_cmd() {
	command -v "$1" 2>/dev/null || first_match "/usr/sbin/$1" "/usr/local/sbin/$1" "/sbin/$1"
}

# pg_bin NAME... prints the newest /usr/lib/postgresql/*/bin holding all NAMEs.
pg_bin() {
	local d n ok
	while read -r d; do
		ok=1
		for n in "$@"; do [[ -x $d/$n ]] || ok=0; done
		if ((ok)); then
			printf '%s\n' "$d"
			return 0
		fi
	done < <(shopt -s nullglob; for d in /usr/lib/postgresql/*/bin; do printf '%s\n' "$d"; done | sort -t/ -k5,5 -V -r)
	return 1
}

missing=()     # Debian packages to install
found=()       # what is there, for the report
check() { # check PACKAGE DESCRIPTION COMMAND...
	local pkg=$1 what=$2 path
	shift 2
	if path=$("$@"); then
		found+=("$what: $path")
	else
		missing+=("$pkg")
	fi
}

check postgresql "PostgreSQL server" pg_bin initdb postgres pg_basebackup
check postgresql-client "psql" find_cmd psql
check postgresql-client "pgbench" sh -c 'command -v pgbench || ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | head -n1 | grep .'
check postgresql-contrib "PostgreSQL contrib" first_match /usr/share/postgresql/*/extension/pg_stat_statements.control
check mariadb-server "MariaDB server" sh -c 'p=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null) && command -v mariadb-install-db >/dev/null && echo "$p"'
check mariadb-client "mariadb client" find_cmd mariadb
check pgbouncer "PgBouncer" find_cmd pgbouncer
check sysbench "sysbench" find_cmd sysbench

# Unique, in order.
declare -A seen=()
pkgs=()
for p in "${missing[@]}"; do
	if [[ -z ${seen[$p]:-} ]]; then
		seen[$p]=1
		pkgs+=("$p")
	fi
done

if ((${#pkgs[@]} == 0)); then
	say "nothing to do, all present:"
	printf '  %s\n' "${found[@]}"
	exit 0
fi

say "missing packages: ${pkgs[*]}"

if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		say "not root: running again with sudo"
		exec sudo -- "$0" "$@"
	fi
	say "error: not root and sudo is not available; as root, run: apt-get update && apt-get install -y ${pkgs[*]}" >&2
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	say "error: apt-get not found (not Debian/Ubuntu); install these yourself: ${pkgs[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
apt-get update -q
say "apt-get install ${pkgs[*]}"
apt-get install -y -q --no-install-recommends "${pkgs[@]}"

# The package scripts may have started the system services; the tests do not
# use them. Stop the ones whose packages were installed just now.
declare -A service_of=([postgresql]=postgresql [mariadb-server]=mariadb [pgbouncer]=pgbouncer)
for p in "${pkgs[@]}"; do
	svc=${service_of[$p]:-}
	[[ -n $svc ]] || continue
	if service "$svc" status >/dev/null 2>&1; then
		say "stopping the system service $svc started by its package (tests run their own servers)"
		service "$svc" stop >/dev/null 2>&1 || true
	fi
done

# Check again.
missing=()
found=()
check postgresql "PostgreSQL server" pg_bin initdb postgres pg_basebackup
check mariadb-server "MariaDB server" sh -c 'p=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null) && command -v mariadb-install-db >/dev/null && echo "$p"'
check pgbouncer "PgBouncer" find_cmd pgbouncer
check sysbench "sysbench" find_cmd sysbench
if ((${#missing[@]} > 0)); then
	say "error: still missing after apt-get install: ${missing[*]}" >&2
	exit 1
fi
say "installed: ${pkgs[*]}"
printf '  %s\n' "${found[@]}"

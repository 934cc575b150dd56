#!/usr/bin/env bash
# testdb.sh: run a command with a throwaway MariaDB and PostgreSQL.
#
#   scripts/testdb.sh [command args...]
#
# Starts each server in its own temp dir on a free loopback port, exports
# MYSQL_DSN (go-sql-driver form) and POSTGRES_DSN (pgx URL form), runs the
# command, then stops both servers and removes their data, whatever the
# command's outcome. Missing server packages are installed with apt-get.
# A DSN already set in the environment is used as is and no server of that
# kind is started. Set TESTDB_ONLY=mysql or TESTDB_ONLY=postgres to start one.
set -euo pipefail

log() { printf 'testdb: %s\n' "$*" >&2; }

apt_updated=
ensure_pkg() { # ensure_pkg BINARY PACKAGE...
	if [ -n "$(find_bin "$1")" ]; then return; fi
	log "installing $2 (missing $1)"
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	if [ -z "$apt_updated" ]; then $sudo apt-get update -qq >&2; apt_updated=1; fi
	shift
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
	# The packages start a system-wide server; the tests never use it.
}

find_bin() {
	case "$1" in
	mariadbd) command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true ;;
	postgres) ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n1 ;;
	esac
}

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	log "no free port found"; return 1
}

wait_for() { # wait_for SECONDS CMD...
	local deadline=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
		sleep 0.1
	done
}

root=$(mktemp -d "${TMPDIR:-/tmp}/testdb.XXXXXX")
chmod 755 "$root"
mysql_pid=
pg_ctl=
pg_data=
as_pg=()

cleanup() {
	local rc=$?
	if [ -n "$mysql_pid" ]; then
		kill "$mysql_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$mysql_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$mysql_pid" 2>/dev/null || true
	fi
	if [ -n "$pg_ctl" ]; then
		"${as_pg[@]}" "$pg_ctl" -D "$pg_data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$root"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_mysql() {
	ensure_pkg mariadbd mariadb-server
	local bin port dir
	bin=$(find_bin mariadbd)
	port=$(free_port)
	dir="$root/mysql"
	mkdir -p "$dir/data"
	local user_args=()
	[ "$(id -u)" -ne 0 ] || user_args=(--user="$(id -un)")
	"$bin" --no-defaults --datadir="$dir/data" --socket="$dir/mysql.sock" \
		--pid-file="$dir/mysql.pid" --port="$port" --bind-address=127.0.0.1 \
		--skip-grant-tables --skip-log-bin --innodb-buffer-pool-size=64M \
		--innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 \
		--max-connections=500 --log-error="$dir/error.log" "${user_args[@]}" >>"$dir/error.log" 2>&1 &
	mysql_pid=$!
	local client
	client=$(command -v mariadb || command -v mysql)
	if ! wait_for 30 "$client" --no-defaults --socket="$dir/mysql.sock" -e 'SELECT 1'; then
		log "MariaDB did not start:"; tail -n 20 "$dir/error.log" >&2; return 1
	fi
	"$client" --no-defaults --socket="$dir/mysql.sock" -e 'CREATE DATABASE IF NOT EXISTS test'
	export MYSQL_DSN="root@tcp(127.0.0.1:$port)/test?parseTime=true"
	log "MariaDB on 127.0.0.1:$port"
}

start_postgres() {
	ensure_pkg postgres postgresql
	local bin bindir port
	bin=$(find_bin postgres)
	bindir=$(dirname "$bin")
	port=$(free_port)
	pg_data="$root/pg/data"
	mkdir -p "$root/pg"
	if [ "$(id -u)" -eq 0 ]; then
		# initdb refuses to run as root.
		chown postgres "$root/pg"
		as_pg=(runuser -u postgres --)
	fi
	"${as_pg[@]}" "$bindir/initdb" -D "$pg_data" -U postgres -A trust --no-sync >"$root/pg/initdb.log" 2>&1 ||
		{ log "initdb failed:"; cat "$root/pg/initdb.log" >&2; return 1; }
	pg_ctl="$bindir/pg_ctl"
	"${as_pg[@]}" "$pg_ctl" -D "$pg_data" -l "$root/pg/server.log" -w -t 30 \
		-o "-p $port -k $root/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null ||
		{ log "PostgreSQL did not start:"; tail -n 20 "$root/pg/server.log" >&2; return 1; }
	"${as_pg[@]}" "$bindir/psql" -h "$root/pg" -p "$port" -U postgres -qc 'CREATE DATABASE test' postgres
	export POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
	log "PostgreSQL on 127.0.0.1:$port"
}

only=${TESTDB_ONLY:-}
if [ -z "${MYSQL_DSN:-}" ] && [ "$only" != postgres ]; then start_mysql; fi
if [ -z "${POSTGRES_DSN:-}" ] && [ "$only" != mysql ]; then start_postgres; fi

if [ $# -eq 0 ]; then
	log "MYSQL_DSN=${MYSQL_DSN:-}"
	log "POSTGRES_DSN=${POSTGRES_DSN:-}"
	log "no command given; servers stay up until Ctrl-C"
	while :; do sleep 3600; done
fi
"$@"

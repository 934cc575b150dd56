#!/usr/bin/env bash
# testdb.sh: run a command with a throwaway MariaDB and PostgreSQL.
#
#   scripts/testdb.sh [command args...]
#
# Starts each server in its own temp dir on a free loopback port (installing
# mariadb-server / postgresql with apt-get when missing), exports MYSQL_DSN
# (go-sql-driver form) and POSTGRES_DSN (pgx URL form) to the command, runs it,
# then stops both servers and removes their data, whatever the outcome, and
# exits with the command's status. A DSN already set in the environment is
# used as is; TESTDB_ONLY=mysql or TESTDB_ONLY=postgres starts only one.
# The work is done by ./internal/testdb (package internal/throwaway), which
# the demo uses too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/bin"
(cd "$root" && go build -o bin/testdb ./internal/testdb)
exec "$root/bin/testdb" "$@"

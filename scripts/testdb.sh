#!/usr/bin/env bash
# testdb.sh: run a command with a throwaway MariaDB, PostgreSQL and Apache
# RocketMQ.
#
#   scripts/testdb.sh [command args...]
#
# Starts each server in its own temp dir on free loopback ports (installing
# mariadb-server / postgresql / a JRE and Maven with apt-get when missing;
# the first run fetches Apache RocketMQ's jars, ~85 MB, from Maven Central
# into ~/.cache/rocketmq-exactlyonce), exports MYSQL_DSN (go-sql-driver
# form), POSTGRES_DSN (pgx URL form), ROCKETMQ_NAMESRV (the name server's
# host:port) and ROCKETMQ_PROXY (the gRPC address of the proxy the broker
# runs in, local mode) to the command, runs it, then stops the servers and removes
# their data, whatever the outcome, and exits with the command's status.
# A variable already set in the environment is used as is, and that server
# is not started. TESTDB_ONLY, a comma-separated list of mysql (or mariadb),
# postgres and rocketmq, starts only those: TESTDB_ONLY=mysql,postgres for
# the databases without Java, TESTDB_ONLY=rocketmq for the broker alone.
# The work is done by ./internal/testdb (package internal/throwaway, which
# the demo uses for its database too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/bin"
(cd "$root" && go build -o bin/testdb ./internal/testdb)
exec "$root/bin/testdb" "$@"

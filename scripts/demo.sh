#!/usr/bin/env bash
# demo.sh: run the price-change demo on a throwaway database.
#
#   scripts/demo.sh [mariadb|postgres] [demo flags...]
#
# Starts a throwaway MariaDB (default) or PostgreSQL with scripts/testdb.sh,
# runs `go run ./examples/price-change` against it with -driver and -dsn,
# then removes the server. The example itself only takes DSNs, so it can be
# copied; starting servers is this script's job.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=mariadb
case "${1:-}" in
mariadb | mysql) kind=mariadb; shift ;;
postgres | postgresql) kind=postgres; shift ;;
esac

# Never a server named by the environment: the demo would write to it.
unset MYSQL_DSN POSTGRES_DSN
if [ "$kind" = mariadb ]; then
	export TESTDB_ONLY=mysql
	exec scripts/testdb.sh sh -c 'exec go run ./examples/price-change -driver mysql -dsn "$MYSQL_DSN" "$@"' demo "$@"
fi
export TESTDB_ONLY=postgres
exec scripts/testdb.sh sh -c 'exec go run ./examples/price-change -driver pgx -dsn "$POSTGRES_DSN" "$@"' demo "$@"

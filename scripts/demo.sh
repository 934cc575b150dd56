#!/usr/bin/env bash
# demo.sh: run the price-change demo on a throwaway database.
#
#   scripts/demo.sh [mariadb|postgres] [apache] [demo flags...]
#
# Starts a throwaway MariaDB (default) or PostgreSQL with scripts/testdb.sh,
# runs `go run ./examples/price-change` against it with -driver and -dsn,
# then removes the server. The demo's broker is in-process, or with `apache`
# a throwaway Apache RocketMQ (name server and broker, Java; see
# docs/apache-rocketmq.md) given to the demo as -namesrv, with a topic of
# its own that internal/mktopic creates first. The example itself only takes
# addresses and existing topics, so it can be copied; starting servers and
# creating topics is this script's job.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=mariadb
case "${1:-}" in
mariadb | mysql) kind=mariadb; shift ;;
postgres | postgresql) kind=postgres; shift ;;
esac
only=mysql
driver=mysql
dsn='$MYSQL_DSN'
if [ "$kind" = postgres ]; then
	only=postgres
	driver=pgx
	dsn='$POSTGRES_DSN'
fi
namesrv=
mktopic=
if [ "${1:-}" = apache ]; then
	shift
	only=$only,rocketmq
	topic=price-change-$(date +%s)
	mktopic="go run ./internal/mktopic -topic $topic -queues 8 &&"
	namesrv="-namesrv \"\$ROCKETMQ_NAMESRV\" -topic $topic"
fi

# Never a server named by the environment: the demo would write to it.
unset MYSQL_DSN POSTGRES_DSN ROCKETMQ_NAMESRV NAMESRV_ADDR
export TESTDB_ONLY=$only
exec scripts/testdb.sh sh -c "$mktopic exec go run ./examples/price-change -driver $driver -dsn \"$dsn\" $namesrv \"\$@\"" demo "$@"

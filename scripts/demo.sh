#!/usr/bin/env bash
# demo.sh: run the price-change demo on a throwaway database.
#
#   scripts/demo.sh [mariadb|postgres] [apache|v5] [demo flags...]
#
# Starts a throwaway MariaDB (default) or PostgreSQL with scripts/testdb.sh,
# runs the example (examples/price-change, a module of its own) against it
# with -driver and -dsn, then removes the server. The demo's broker is
# in-process, or with `apache` a throwaway Apache RocketMQ (name server and
# broker, Java; see docs/apache-rocketmq.md) given to the demo as -namesrv,
# with a topic of its own that internal/mktopic creates first. With `v5`
# the demo runs on the RocketMQ 5 gRPC client (exactlyoncev5, docs/v5.md)
# against the proxy the throwaway broker runs in, given as -proxy, with a
# FIFO topic and an orderly group that internal/mktopic creates first. The
# example itself only takes addresses and existing topics, so it can be
# copied; starting servers and creating topics is this script's job.
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
broker=
mktopic=
case "${1:-}" in
apache)
	shift
	only=$only,rocketmq
	topic=price-change-$(date +%s)
	mktopic="go run ./internal/mktopic -topic $topic -queues 8 &&"
	broker="-namesrv \"\$ROCKETMQ_NAMESRV\" -topic $topic"
	;;
v5)
	shift
	only=$only,rocketmq
	topic=price-change-$(date +%s)
	group=product-service-$(date +%s)
	mktopic="go run ./internal/mktopic -topic $topic -queues 8 -fifo-group $group &&"
	broker="-proxy \"\$ROCKETMQ_PROXY\" -topic $topic -group $group"
	;;
esac

# Never a server named by the environment: the demo would write to it.
unset MYSQL_DSN POSTGRES_DSN ROCKETMQ_NAMESRV ROCKETMQ_PROXY NAMESRV_ADDR
export TESTDB_ONLY=$only
exec scripts/testdb.sh sh -c "$mktopic exec go -C examples/price-change run . -driver $driver -dsn \"$dsn\" $broker \"\$@\"" demo "$@"

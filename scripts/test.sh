#!/usr/bin/env bash
# test.sh: run every test of the project, the way CI does.
#
#   scripts/test.sh
#
# 1. gofmt and go vet.
# 2. Every package's tests with the race detector.
# 3. The packages whose tests drive the real rocketmq-client-go consumer in
#    process, again without the race detector: v2.1.2 has data races of its
#    own (see docs/consumer.md), so those tests are left out under -race
#    (rocketmqtest's by a !race build tag, exactlyonce's E2E tests and
#    internal/brokertest's by a skip).
#    Their other tests run again too, which costs a few seconds.
#    (The example's end-to-end tests run the client in subprocesses built
#    without -race, so step 2 runs them.)
#
# Step 2 also runs internal/throwaway's own test (THROWAWAY_TEST=1), which
# starts a further pair of database servers and a further Apache RocketMQ.
#
# All of it runs against a throwaway MariaDB, PostgreSQL and Apache RocketMQ
# that scripts/testdb.sh installs, starts and removes (or the servers named
# by MYSQL_DSN / POSTGRES_DSN / ROCKETMQ_NAMESRV, when set). The end-to-end
# tests run on Apache RocketMQ as well as on rocketmqtest; here a missing
# Apache RocketMQ fails them (REQUIRE_APACHE_ROCKETMQ=1) instead of skipping
# them, as a plain go test does.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TESTDB_STARTED:-}" ]; then
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [ -n "$unformatted" ]; then
		printf 'gofmt needed:\n%s\n' "$unformatted" >&2
		exit 1
	fi
	go vet ./...
	TESTDB_STARTED=1 exec scripts/testdb.sh "$0" "$@"
fi

export REQUIRE_APACHE_ROCKETMQ=1
THROWAWAY_TEST=1 go test -race -count=1 -timeout 20m ./...
go test -count=1 -timeout 20m ./rocketmqtest/... ./exactlyonce/... ./internal/brokertest/

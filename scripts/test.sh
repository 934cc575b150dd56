#!/usr/bin/env bash
# test.sh: run every test of the project, the way CI does.
#
#   scripts/test.sh
#
# 1. gofmt, go vet, staticcheck and govulncheck (both installed by this
#    script at the versions pinned below, into bin/tools).
# 2. Every package's tests with the race detector.
# 3. The packages whose tests drive the real rocketmq-client-go consumer in
#    process, again without the race detector: v2.1.2 has data races of its
#    own (see docs/consumer.md), so those tests are left out under -race
#    (rocketmqtest's by a !race build tag, exactlyonce's E2E tests and
#    internal/brokertest's by a skip). Among them exactlyonce's
#    TestJavaInterop, whose Java producers scripts/java-interop.sh builds
#    from interop/java (about 10 s once its jars are cached; the first run
#    builds it, ~30 s).
#    Their other tests run again too, which costs a few seconds.
#    Beside them, the tests of the price-change example (examples/price-change,
#    a module of its own for its RocketMQ 5 path), with -race: its end-to-end
#    tests run the client in subprocesses built without it.
#
# 4. The end-to-end suites (exactlyonce's E2E tests, the example's tests
#    but its v5 one) again, built with the newest rocketmq-client-go commit
#    the Go module proxy serves: go.clienthead.mod, a second go.mod given as
#    GOFLAGS=-modfile (so that the example's tests build their subprocess
#    with it too; for the example, a copy of its go.mod with that client
#    line). go.mod keeps v2.1.2, the newest tag, as the minimum;
#    docs/consumer.md says what differs between the two.
# 5. A short run of the chaos test (internal/chaos, docs/apache-rocketmq.md):
#    1,000 messages over 20 s on an Apache RocketMQ of its own, killed and
#    restarted three times; about a minute and a half.
# 6. The tests of the nested modules (see nested_modules; the example's ran
#    in step 3); exactlyoncev5's end-to-end tests run without the race
#    detector with 4.
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

# Modules nested in this repository, with a go.mod of their own so that the
# library's go.mod does not require what they use; each is vetted, checked
# and tested like the root module.
nested_modules="schema/migrationtest exactlyonce/eoprom exactlyonce/eotel mqdatasource/ormtest mqdatasource/mssqlbeside exactlyoncev5"
# The example is a nested module too, tested with the end-to-end suites.
example=examples/price-change

staticcheck_version=v0.8.2 # honnef.co/go/tools
govulncheck_version=v1.9.0 # golang.org/x/vuln
# govulncheck reads a snapshot of the Go vulnerability database built from
# the golang.org/x/vulndb module (its data/osv files), not the live service:
# CI reaches only the module proxy, and a pinned snapshot gives the same
# answer on every run. Move the version forward to see newer reports.
vulndb_version=v0.0.0-20261105234957-e22db6528018

# vulncheck runs govulncheck on every module and fails on a vulnerable
# function of a required module that the code calls. Findings in the standard library are
# printed but do not fail: they belong to the Go release that builds the
# binary (fixed by building with the release named), not to this module.
vulncheck() {
	local db="$PWD/bin/vulndb-$vulndb_version"
	if [ ! -f "$db/index/db.json" ]; then
		local osv
		osv=$(go mod download -json "golang.org/x/vulndb@$vulndb_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')/data/osv
		rm -rf "$db.tmp"
		go run "golang.org/x/vulndb/cmd/indexdb@$vulndb_version" -vulns "$osv" -out "$db.tmp"
		mv "$db.tmp" "$db"
	fi
	command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
	local out=bin/govulncheck.json m
	: >"$out"
	# Exit status 3 only says that something was found; the findings decide.
	for m in . $nested_modules $example; do
		(cd "$m" && "$OLDPWD/bin/tools/govulncheck" -db "file://$db" -format json ./...) >>"$out" || [ $? -eq 3 ]
	done
	# A finding whose first frame names a function is one the code calls.
	local called='select(.finding and .finding.trace[0].function) | .finding'
	jq -r "$called"' | select(.trace[0].module == "stdlib") |
		"govulncheck: warning: \(.osv) in the standard library (\(.trace[0].version)), fixed in \(.fixed_version): build with a newer Go"' "$out" | sort -u >&2
	local bad
	bad=$(jq -r "$called"' | select(.trace[0].module != "stdlib") |
		"\(.osv) in \(.trace[0].module)@\(.trace[0].version), fixed in \(.fixed_version), called from \(.trace[-1].package).\(.trace[-1].function)"' "$out" | sort -u)
	if [ -n "$bad" ]; then
		printf 'govulncheck: vulnerable code called:\n%s\n' "$bad" >&2
		return 1
	fi
}

if [ -z "${TESTDB_STARTED:-}" ]; then
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [ -n "$unformatted" ]; then
		printf 'gofmt needed:\n%s\n' "$unformatted" >&2
		exit 1
	fi
	go vet ./...
	# go.clienthead.mod (step 4) is go.mod with another client version.
	client_line='github.com/apache/rocketmq-client-go/v2 '
	if ! diff <(grep -v "$client_line" go.mod) <(grep -v "$client_line" go.clienthead.mod) >&2; then
		echo 'go.clienthead.mod differs from go.mod beyond the rocketmq-client-go line: update it (docs/consumer.md, Client versions)' >&2
		exit 1
	fi
	GOBIN="$PWD/bin/tools" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
	GOBIN="$PWD/bin/tools" go install "golang.org/x/vuln/cmd/govulncheck@$govulncheck_version"
	bin/tools/staticcheck ./...
	# The race build tag selects other files (see race_on_test.go).
	bin/tools/staticcheck -tags race ./...
	for m in $nested_modules $example; do
		(cd "$m" && go vet ./... && "$OLDPWD/bin/tools/staticcheck" ./...)
	done
	vulncheck
	TESTDB_STARTED=1 exec scripts/testdb.sh "$0" "$@"
fi

export REQUIRE_APACHE_ROCKETMQ=1
# The end-to-end suites write one line per suite and broker they ran on
# ("e2e: exactlyonce on apache-rocketmq 5.3.3: ok (...)"; see
# internal/brokertest, Suite), printed after the Go tests, pass or fail.
E2E_SUMMARY=$(mktemp)
export E2E_SUMMARY
# On any exit (a failure, or Ctrl-C: a background job ignores SIGINT) the
# example's background tests are stopped, go test's children first, and the
# temporary files removed.
example_out= example_pid= head_mod=
kill_tree() {
	local child
	for child in $(pgrep -P "$1" || true); do
		kill_tree "$child"
	done
	kill "$1" 2>/dev/null || true
}
cleanup() {
	if [[ -n $example_pid ]] && kill -0 "$example_pid" 2>/dev/null; then
		kill_tree "$example_pid"
	fi
	rm -f "$E2E_SUMMARY" ${example_out:+"$example_out"}
	if [[ -n $head_mod ]]; then rm -rf "$head_mod"; fi
}
trap cleanup EXIT
THROWAWAY_TEST=1 go test -race -count=1 -timeout 20m ./... || { cat "$E2E_SUMMARY"; exit 1; }
# The example's tests run beside these, as they did beside the other
# packages in step 2 before the example became a module: both are mostly
# waiting on the brokers (its TestDemoV5 spends half a minute in each v5
# client's GracefulStop, which waits for its long polls).
example_out=$(mktemp)
(cd "$example" && go test -race -count=1 -timeout 20m ./...) >"$example_out" 2>&1 &
example_pid=$!
go test -count=1 -timeout 20m ./rocketmqtest/... ./exactlyonce/... ./internal/brokertest/ || { wait "$example_pid"; cat "$example_out" "$E2E_SUMMARY"; exit 1; }
wait "$example_pid" || { cat "$example_out" "$E2E_SUMMARY"; exit 1; }
example_pid=
cat "$example_out"
rm -f "$example_out"
head_client=$(sed -n 's|^\tgithub.com/apache/rocketmq-client-go/v2 \(v[^ ]*\)$|\1|p' go.clienthead.mod)
head_test() {
	E2E_CLIENT="rocketmq-client-go $head_client" GOFLAGS="-modfile=$PWD/go.clienthead.mod" go test -count=1 -timeout 20m "$@"
}
head_test -run 'E2E|SendBack' ./exactlyonce/ || { cat "$E2E_SUMMARY"; exit 1; }
# The example's go.mod with the client line of go.clienthead.mod (go.sum
# beside it: both sums). Its v5 test does not use rocketmq-client-go.
head_mod=$(mktemp -d)
sed "s|^\(\tgithub.com/apache/rocketmq-client-go/v2\) v.*|\1 $head_client|" "$example/go.mod" >"$head_mod/go.mod"
sort -u "$example/go.sum" go.clienthead.sum >"$head_mod/go.sum"
(cd "$example" && E2E_CLIENT="rocketmq-client-go $head_client" GOFLAGS="-modfile=$head_mod/go.mod" \
	go test -count=1 -timeout 20m -skip TestDemoV5 ./...) || { cat "$E2E_SUMMARY"; exit 1; }
rm -rf "$head_mod"
# exactlyoncev5's end-to-end tests (the v5 gRPC client against the proxy the
# broker runs in, and the v2 client for the switch between them) are skipped
# under -race, like step 3's: run them here; their line joins the summary.
# They run in parallel (own topics and groups), mostly waiting on the broker;
# cmd/eobench5's TestE2E (the v5 benchmark with 200 messages, checked for
# correctness) runs among them.
(cd exactlyoncev5 && go test -count=1 -parallel 4 -timeout 20m -run E2E ./...) || { cat "$E2E_SUMMARY"; exit 1; }
cat "$E2E_SUMMARY"
CHAOS=1 CHAOS_MESSAGES=1000 CHAOS_DURATION=20s go test -count=1 -timeout 15m ./internal/chaos/
for m in $nested_modules; do
	(cd "$m" && go test -race -count=1 -timeout 10m ./...)
done

#!/usr/bin/env bash
# test.sh: run every test of the project, the way CI does.
#
# Checks formatting and go vet, then runs all packages' tests with the race
# detector against a throwaway MariaDB and PostgreSQL (scripts/testdb.sh
# installs and starts them, and removes them afterwards). Extra arguments go
# to `go test`, e.g. scripts/test.sh -run Orderly ./exactlyonce/
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	printf 'gofmt needed:\n%s\n' "$unformatted" >&2
	exit 1
fi
go vet ./...

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
exec scripts/testdb.sh go test -race -count=1 -timeout 20m "${args[@]}"

#!/usr/bin/env bash
# java-interop.sh: run a class of the Java interop harness (interop/java).
#
#   scripts/java-interop.sh CLASS [args...]
#   e.g. scripts/java-interop.sh interop.Main 127.0.0.1:9876 some_topic
#
# The first run builds interop/java with Maven (its jars come from Maven
# Central) into ~/.cache/rocketmq-exactlyonce/java-interop-HASH, HASH being
# that of the harness's files, so an edit rebuilds and later runs start the
# JVM at once. Maven's output goes to stderr, the class's stdout is the
# script's. exactlyonce's TestJavaInterop runs it; see
# docs/migrating-from-java.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/interop/java"
# A JDK (javac, not only the JRE the broker needs) and Maven, installed with
# apt-get when missing, as scripts/testdb.sh does for the servers.
if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "java-interop.sh: javac or mvn missing: apt-get install default-jdk-headless maven" >&2
		exit 3
	fi
	echo "java-interop.sh: installing default-jdk-headless and maven" >&2
	apt-get install -y -qq default-jdk-headless maven >&2 ||
		{ apt-get update -qq >&2 && apt-get install -y -qq default-jdk-headless maven >&2; }
fi
hash=$(cd "$src" && find . -type f -not -path './target/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-8)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/rocketmq-exactlyonce/java-interop-$hash"
if [ ! -d "$cache" ]; then
	mkdir -p "$(dirname "$cache")"
	# Built in a temp dir and renamed into place: an interrupted build is
	# never used, and the source tree gets no target/.
	work=$(mktemp -d "$cache.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	cp -r "$src/." "$work/"
	echo "java-interop.sh: building interop/java into $cache" >&2
	mvn -q -B -f "$work/pom.xml" compile dependency:copy-dependencies -DoutputDirectory="$work/lib" >&2
	mv "$work/target/classes" "$work/classes"
	rm -rf "$work/target"
	mv "$work" "$cache" 2>/dev/null || true # another run may have finished first
fi
# Small heaps: the machines running the tests have two cores and run a
# broker, two databases and the Go tests besides.
exec java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$cache/classes:$cache/lib/*" "$@"

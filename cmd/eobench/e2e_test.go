package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// TestE2E runs -mode e2e with a few messages on each configured database,
// so that the benchmark cannot rot: every variant, and every redelivery
// storm, must end with each message applied exactly once. It checks
// correctness only; the figures are the command's. Run it with
// scripts/testdb.sh go test ./cmd/eobench/
func TestE2E(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race: rocketmq-client-go v2.1.2 has data races of its own; run without -race")
	}
	const messages = 200
	dbtest.ForEach(t, func(t *testing.T, env *dbtest.Env) {
		var out strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		results, err := runE2E(ctx, e2eConfig{
			driver: env.Driver, dsn: env.DSN, messages: messages, bodySize: 1024, queues: 4,
			accounts: 50, rounds: 1, prefix: dbtest.UniqueName(t, "eob"), flushLog: -1,
			stall: 30 * time.Second, out: &out,
		})
		t.Log("\n" + out.String())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"at-least-once", "select-insert", "eo", "eo-nocheck", "eo-batch8", "eo-batch32",
			"storm-eo-table", "storm-eo-cache", "storm-eo-batch32-table", "storm-eo-batch32-cache"}
		var got []string
		for _, r := range results {
			got = append(got, r.variant)
			if r.rows != messages || r.balance != messages {
				t.Errorf("%s: %d ledger rows, balance %d; want %d of each", r.variant, r.rows, r.balance, messages)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("runs %v, want %v", got, want)
		}
		for _, line := range []string{"ratio eo/at-least-once ", "ratio eo-batch32/at-least-once ", "storm-eo-batch32-cache "} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("output lacks %q", line)
			}
		}
	})
}

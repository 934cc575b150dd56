package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5/internal/proxytest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// TestE2E runs the benchmark with a few messages against the real proxy on
// each configured database, so that it cannot rot: every variant must end
// with each message applied exactly once. It checks correctness only; the
// figures are the command's. Skipped under -race (which scripts/test.sh's
// run of exactlyoncev5's E2E tests does not use): the figures would be
// meaningless and the run several times longer.
func TestE2E(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race: run without it (scripts/test.sh does)")
	}
	t.Parallel() // own topic, groups and tables; mostly waiting on the proxy
	p := proxytest.FromEnv(t)
	const messages = 200
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		t.Parallel()
		var out strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		results, err := run(ctx, config{
			driver: e.Driver, dsn: e.DSN, proxy: p.Endpoint, namesrv: p.NameServer(),
			messages: messages, bodySize: 100, queues: 2, accounts: 50, rounds: 1,
			stall: time.Minute, prefix: dbtest.UniqueName(t, "eob5"), out: &out,
		})
		t.Log("\n" + out.String())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range results {
			got = append(got, r.variant)
			if r.rows != messages || r.balance != messages {
				t.Errorf("%s: %d ledger rows, balance %d; want %d of each", r.variant, r.rows, r.balance, messages)
			}
		}
		if want := "at-least-once,eo,eo-nocheck"; strings.Join(got, ",") != want {
			t.Errorf("runs %v, want %s", got, want)
		}
		for _, line := range []string{"ratio eo/at-least-once ", "ratio eo-nocheck/at-least-once ", "\nnoop "} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("output lacks %q", line)
			}
		}
	})
}

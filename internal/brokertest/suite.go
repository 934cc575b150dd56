package brokertest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvSummary names the file to which Suite.Report appends its lines;
// scripts/test.sh sets it and prints the file at the end of the run.
const EnvSummary = "E2E_SUMMARY"

// EnvClient names, when set, the rocketmq-client-go the tests were built
// with, for Report's lines: scripts/test.sh sets it for its run with the
// second go.mod (a test binary's build information lists no modules).
const EnvClient = "E2E_CLIENT"

// Suite records how an end-to-end suite's tests went on each broker, so
// that a run says which brokers a suite really ran against: Report writes
// one line per broker, e.g. "e2e: exactlyonce on apache-rocketmq 5.3.3: ok
// (12 passed)", or with E2E_CLIENT set "e2e: exactlyonce with <E2E_CLIENT>
// on ...".
type Suite struct {
	name string

	mu      sync.Mutex
	brokers []string // in the order first seen
	counts  map[string]*counts
}

type counts struct{ passed, failed, skipped int }

// NewSuite returns a Suite named name ("exactlyonce").
func NewSuite(name string) *Suite {
	return &Suite{name: name, counts: map[string]*counts{}}
}

// Record counts t's outcome, when it ends, under broker: "rocketmqtest", or
// "apache" for the Apache RocketMQ of Apache (its version is added by
// Report).
func (s *Suite) Record(t *testing.T, broker string) {
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.counts[broker]
		if c == nil {
			c = &counts{}
			s.counts[broker] = c
			s.brokers = append(s.brokers, broker)
		}
		switch {
		case t.Failed():
			c.failed++
		case t.Skipped():
			c.skipped++
		default:
			c.passed++
		}
	})
}

// Report writes the suite's lines to the file named by E2E_SUMMARY, or to
// standard output (shown by go test -v, or when the package fails) when it
// is unset.
func (s *Suite) Report() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	name := s.name
	if c := os.Getenv(EnvClient); c != "" {
		name += " with " + c
	}
	for _, broker := range s.brokers {
		c := s.counts[broker]
		if broker == "apache" {
			broker = "apache-rocketmq"
			if v := cachedVersion(); v != "" {
				broker += " " + v
			}
		}
		status := "ok"
		switch {
		case c.failed > 0:
			status = "FAIL"
		case c.passed == 0:
			status = "skipped"
		}
		fmt.Fprintf(&b, "e2e: %s on %s: %s (%d passed, %d failed, %d skipped)\n", name, broker, status, c.passed, c.failed, c.skipped)
	}
	var w io.Writer = os.Stdout
	if path := os.Getenv(EnvSummary); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cachedVersion returns the version of the Apache RocketMQ a test of this
// process looked up, or "".
func cachedVersion() string {
	mu.Lock()
	defer mu.Unlock()
	for _, b := range cached {
		return b.version
	}
	return ""
}

package rlogslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// records decodes the JSON lines of buf.
func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, r)
	}
	buf.Reset()
	return out
}

// TestThroughRlog logs through the client's rlog functions, as the client
// does, after SetDefault: records reach the slog handler with their fields
// as attributes, and rlog.SetLogLevel filters them.
func TestThroughRlog(t *testing.T) {
	var buf bytes.Buffer
	SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "rocketmq"))
	t.Setenv("ROCKETMQ_GO_LOG_LEVEL", "")

	rlog.Warning("lock MessageQueue to broker invoke error", map[string]any{
		rlog.LogKeyBroker: "127.0.0.1:10911", rlog.LogKeyUnderlayError: "service close is not running",
	})
	rlog.Debug("dropped at the default level", nil)
	rlog.Info("", nil) // the client's empty records are dropped
	got := records(t, &buf)
	if len(got) != 1 {
		t.Fatalf("%d records, want 1: %v", len(got), got)
	}
	r := got[0]
	if r["level"] != "WARN" || r["msg"] != "lock MessageQueue to broker invoke error" ||
		r["broker"] != "127.0.0.1:10911" || r["underlayError"] != "service close is not running" || r["component"] != "rocketmq" {
		t.Errorf("record %v", r)
	}

	rlog.SetLogLevel("debug")
	rlog.Debug("pull", map[string]any{"queueId": 3})
	if got := records(t, &buf); len(got) != 1 || got[0]["level"] != "DEBUG" || got[0]["queueId"] != 3.0 {
		t.Errorf("after SetLogLevel(debug): %v", got)
	}
	rlog.SetLogLevel("error")
	rlog.Warning("filtered", nil)
	rlog.Error("kept", nil)
	if got := records(t, &buf); len(got) != 1 || got[0]["msg"] != "kept" {
		t.Errorf("after SetLogLevel(error): %v", got)
	}
	if err := rlog.SetOutputPath("/tmp/x.log"); !errors.Is(err, ErrOutputPath) {
		t.Errorf("SetOutputPath: %v, want ErrOutputPath", err)
	}
}

func TestFatalExits(t *testing.T) {
	var buf bytes.Buffer
	lg := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	code := -1
	old := exit
	exit = func(c int) { code = c }
	t.Cleanup(func() { exit = old })
	lg.Fatal("can't create name server snapshot directory", map[string]any{"path": "/x"})
	got := records(t, &buf)
	if code != 1 || len(got) != 1 || got[0]["level"] != "ERROR+4" {
		t.Errorf("exit %d, records %v: want exit 1 after one ERROR+4 record", code, got)
	}
}

func TestLevelFromEnvironment(t *testing.T) {
	t.Setenv("ROCKETMQ_GO_LOG_LEVEL", "warn")
	var buf bytes.Buffer
	lg := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	lg.Info("filtered", nil)
	lg.Warning("kept", nil)
	if got := records(t, &buf); len(got) != 1 || got[0]["msg"] != "kept" {
		t.Errorf("%v", got)
	}
}

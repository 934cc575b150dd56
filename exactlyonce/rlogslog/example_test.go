package rlogslog_test

import (
	"log/slog"
	"os"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/rlogslog"
)

// The client's records come out of the service's slog handler; here a text
// handler without timestamps, so that the output is stable.
func ExampleSetDefault() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	rlogslog.SetDefault(slog.New(h).With("component", "rocketmq"))

	// What rocketmq-client-go logs when a broker goes away:
	rlog.Warning("lock MessageQueue to broker invoke error", map[string]any{
		rlog.LogKeyBroker:        "127.0.0.1:10911",
		rlog.LogKeyUnderlayError: "connection refused",
	})
	// Output: level=WARN msg="lock MessageQueue to broker invoke error" component=rocketmq broker=127.0.0.1:10911 underlayError="connection refused"
}

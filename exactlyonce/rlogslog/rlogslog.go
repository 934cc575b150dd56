// Package rlogslog routes the logs of rocketmq-client-go (its rlog package,
// logrus by default) into a log/slog Logger, so that the client's lines
// come out with the service's own, in its format and with its handler.
//
//	rlogslog.SetDefault(slog.Default().With("component", "rocketmq"))
//
// rlog.SetLogLevel keeps working: it sets the lowest level passed on.
package rlogslog

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// LevelFatal is the level of the client's Fatal records: above Error.
const LevelFatal = slog.LevelError + 4

// ErrOutputPath is what OutputPath (and so rlog.SetOutputPath) returns: the
// slog handler decides where records go.
var ErrOutputPath = errors.New("rlogslog: the output is the slog handler's; set it there")

// Logger is an rlog.Logger writing to a *slog.Logger. Each of the client's
// fields becomes an attribute, in key order.
type Logger struct {
	l     *slog.Logger
	level slog.LevelVar
}

var _ rlog.Logger = (*Logger)(nil)

// New returns a Logger writing to l, passing on records at the level
// $ROCKETMQ_GO_LOG_LEVEL names (debug, info, warn, error, fatal) and above,
// Info when unset, as the client's own logger does. The slog handler's
// level filters further.
func New(l *slog.Logger) *Logger {
	lg := &Logger{l: l}
	lg.Level(os.Getenv("ROCKETMQ_GO_LOG_LEVEL"))
	return lg
}

// SetDefault makes the client log to l: rlog.SetLogger(New(l)). Call it
// before the first producer or consumer is built, as the client logs from
// then on.
func SetDefault(l *slog.Logger) *Logger {
	lg := New(l)
	rlog.SetLogger(lg)
	return lg
}

// exit ends the process after a Fatal record.
var exit = os.Exit

func (lg *Logger) log(level slog.Level, msg string, fields map[string]any) {
	if msg == "" && len(fields) == 0 {
		return // the client logs such empty records; its own logger drops them too
	}
	ctx := context.Background()
	if level < lg.level.Level() || !lg.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	lg.l.LogAttrs(ctx, level, msg, attrs...)
}

// Debug implements rlog.Logger.
func (lg *Logger) Debug(msg string, fields map[string]any) { lg.log(slog.LevelDebug, msg, fields) }

// Info implements rlog.Logger.
func (lg *Logger) Info(msg string, fields map[string]any) { lg.log(slog.LevelInfo, msg, fields) }

// Warning implements rlog.Logger.
func (lg *Logger) Warning(msg string, fields map[string]any) { lg.log(slog.LevelWarn, msg, fields) }

// Error implements rlog.Logger.
func (lg *Logger) Error(msg string, fields map[string]any) { lg.log(slog.LevelError, msg, fields) }

// Fatal implements rlog.Logger: it logs at LevelFatal and exits the process
// with status 1, as the client's own logger (logrus) does. The client calls
// it where it cannot go on (it cannot create its name server snapshot
// directory).
func (lg *Logger) Fatal(msg string, fields map[string]any) {
	lg.log(LevelFatal, msg, fields)
	exit(1)
}

// Level implements rlog.Logger: it sets the lowest level passed on, by the
// client's names: "debug", "warn", "error", "fatal", anything else Info.
func (lg *Logger) Level(level string) {
	switch strings.ToLower(level) {
	case "debug":
		lg.level.Set(slog.LevelDebug)
	case "warn":
		lg.level.Set(slog.LevelWarn)
	case "error":
		lg.level.Set(slog.LevelError)
	case "fatal":
		lg.level.Set(LevelFatal)
	default:
		lg.level.Set(slog.LevelInfo)
	}
}

// OutputPath implements rlog.Logger. It returns ErrOutputPath and changes
// nothing: the slog handler decides the output.
func (lg *Logger) OutputPath(string) error { return ErrOutputPath }

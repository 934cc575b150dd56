// Command rocketmqtest runs the in-process RocketMQ name server and broker of
// package rocketmqtest standalone, for tests that span processes and for
// demos.
//
// It prints the name-server address (host:port) as the first line on stdout,
// then serves until SIGINT or SIGTERM, when it closes every connection and
// exits 0.
//
// Usage:
//
//	rocketmqtest [flags]
//
// Flags:
//
//	-host string        listen host (default "127.0.0.1")
//	-port int           listen port, 0 for a free one (default 0)
//	-queues int         queues of auto-created topics (default 4)
//	-topic name:queues  create a topic at start; repeatable
//	-delay-scale d      what one second of a delay level lasts (default 1s)
//	-max-reconsume n    retryMaxTimes when a send-back carries none (default 16)
//	-lock-expiry d      life of an unrenewed orderly queue lock (default 60s)
//	-reconnect-grace d  how long a client whose connection the broker closed
//	                    stays a group member (default 40s)
//	-data dir           keep topics, messages and offsets in dir across restarts
//	-control addr       serve the HTTP control API on addr, e.g. 127.0.0.1:0
//	-v                  log every request to stderr
//
// With -control, the control API's URL is printed to stderr. Faults return an
// id to remove them with DELETE /faults/{id}:
//
//	POST   /faults/drop-offset-commits
//	POST   /faults/delay-offset-commits?d=500ms
//	POST   /faults/fail-send-backs
//	POST   /faults/reject-send-backs
//	POST   /faults/duplicate-sends
//	POST   /faults/delay-responses?code=10&d=1s     (code -1: every request)
//	POST   /faults/drop-responses?code=10
//	DELETE /faults/{id}
//	POST   /pause, /resume, /close-connections, /restart
//	POST   /rewind?group=g&topic=t
//	POST   /topics?topic=t&queues=8
//	GET    /messages?topic=t                         messages as JSON
//	GET    /offsets?group=g&topic=t                  committed offsets per queue
//	GET    /clients                                  connected clients
//
// docs/rocketmqtest.md describes each fault.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

type topicFlags []string

func (t *topicFlags) String() string     { return strings.Join(*t, ",") }
func (t *topicFlags) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if err := run(os.Args[1:], os.Stdout, os.Stderr, stop); err != nil {
		fmt.Fprintln(os.Stderr, "rocketmqtest:", err)
		os.Exit(1)
	}
}

// run serves until stop delivers a signal.
func run(args []string, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	fs := flag.NewFlagSet("rocketmqtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		host         = fs.String("host", "127.0.0.1", "listen host")
		port         = fs.Int("port", 0, "listen port, 0 for a free one")
		queues       = fs.Int("queues", 4, "queues of auto-created topics")
		delayScale   = fs.Duration("delay-scale", time.Second, "what one second of a delay level lasts")
		maxReconsume = fs.Int("max-reconsume", 16, "retryMaxTimes when a send-back carries none")
		lockExpiry   = fs.Duration("lock-expiry", 60*time.Second, "life of an unrenewed orderly queue lock")
		grace        = fs.Duration("reconnect-grace", 40*time.Second, "how long a client whose connection the broker closed stays a group member")
		dataDir      = fs.String("data", "", "keep topics, messages and offsets in this directory across restarts")
		control      = fs.String("control", "", "serve the HTTP control API on this address")
		verbose      = fs.Bool("v", false, "log every request to stderr")
		topics       topicFlags
	)
	fs.Var(&topics, "topic", "name:queues topic to create at start; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	opts := []rocketmqtest.Option{
		rocketmqtest.WithAddr(net.JoinHostPort(*host, strconv.Itoa(*port))),
		rocketmqtest.WithDefaultQueues(*queues),
		rocketmqtest.WithDelayScale(*delayScale),
		rocketmqtest.WithMaxReconsumeTimes(*maxReconsume),
		rocketmqtest.WithLockExpiry(*lockExpiry),
		rocketmqtest.WithReconnectGrace(*grace),
		rocketmqtest.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))),
	}
	if *dataDir != "" {
		opts = append(opts, rocketmqtest.WithDataDir(*dataDir))
	}
	for _, t := range topics {
		name, n, ok := strings.Cut(t, ":")
		q, err := strconv.Atoi(n)
		if !ok || err != nil || name == "" {
			return fmt.Errorf("-topic %q: want name:queues", t)
		}
		if q < 1 { // New refuses it too, but naming WithTopic, not the flag as typed
			return fmt.Errorf("-topic %q: want at least 1 queue", t)
		}
		opts = append(opts, rocketmqtest.WithTopic(name, q))
	}
	b, err := rocketmqtest.New(opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintln(stdout, b.Addr())

	var srv *http.Server
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		srv = &http.Server{Handler: newControl(b), ReadHeaderTimeout: 5 * time.Second}
		fmt.Fprintf(stderr, "rocketmqtest: control API on http://%s\n", ln.Addr())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintln(stderr, "rocketmqtest: control:", err)
			}
		}()
	}

	<-stop
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return nil
}

// control is the HTTP control API.
type control struct {
	b      *rocketmqtest.Broker
	mu     sync.Mutex
	faults map[int]*rocketmqtest.Fault
	nextID int
}

func newControl(b *rocketmqtest.Broker) http.Handler {
	c := &control{b: b, faults: map[int]*rocketmqtest.Fault{}}
	mux := http.NewServeMux()
	fault := func(name string, mk func(r *http.Request) (*rocketmqtest.Fault, error)) {
		mux.HandleFunc("POST /faults/"+name, func(w http.ResponseWriter, r *http.Request) {
			f, err := mk(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.mu.Lock()
			c.nextID++
			id := c.nextID
			c.faults[id] = f
			c.mu.Unlock()
			reply(w, map[string]any{"id": id, "fault": name})
		})
	}
	fault("drop-offset-commits", func(*http.Request) (*rocketmqtest.Fault, error) { return b.DropOffsetCommits(), nil })
	fault("delay-offset-commits", func(r *http.Request) (*rocketmqtest.Fault, error) {
		d, err := time.ParseDuration(r.FormValue("d"))
		if err != nil {
			return nil, err
		}
		return b.DelayOffsetCommits(d), nil
	})
	fault("fail-send-backs", func(*http.Request) (*rocketmqtest.Fault, error) { return b.FailSendBacks(), nil })
	fault("reject-send-backs", func(*http.Request) (*rocketmqtest.Fault, error) { return b.RejectSendBacks(), nil })
	fault("duplicate-sends", func(*http.Request) (*rocketmqtest.Fault, error) { return b.DuplicateSends(), nil })
	fault("delay-responses", func(r *http.Request) (*rocketmqtest.Fault, error) {
		code, err := strconv.ParseInt(r.FormValue("code"), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("code: %w", err)
		}
		d, err := time.ParseDuration(r.FormValue("d"))
		if err != nil {
			return nil, err
		}
		return b.DelayResponses(int16(code), d), nil
	})
	fault("drop-responses", func(r *http.Request) (*rocketmqtest.Fault, error) {
		code, err := strconv.ParseInt(r.FormValue("code"), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("code: %w", err)
		}
		return b.DropResponses(int16(code)), nil
	})
	mux.HandleFunc("DELETE /faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		c.mu.Lock()
		f := c.faults[id]
		delete(c.faults, id)
		c.mu.Unlock()
		if f == nil {
			http.NotFound(w, r)
			return
		}
		f.Remove()
		// After Remove, so that a hit in between is counted too.
		reply(w, map[string]any{"id": id, "hits": f.Hits()})
	})
	action := func(path string, fn func(r *http.Request) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(r); err != nil {
				status := http.StatusInternalServerError
				if errors.As(err, new(inputError)) {
					status = http.StatusBadRequest
				}
				http.Error(w, err.Error(), status)
				return
			}
			reply(w, map[string]any{"ok": true})
		})
	}
	action("/pause", func(*http.Request) error { b.Pause(); return nil })
	action("/resume", func(*http.Request) error { b.Resume(); return nil })
	action("/close-connections", func(*http.Request) error { b.CloseClientConnections(); return nil })
	action("/restart", func(*http.Request) error { return b.Restart() })
	action("/rewind", func(r *http.Request) error {
		for _, p := range []string{"group", "topic"} {
			if r.FormValue(p) == "" {
				return inputError{fmt.Errorf("want %s", p)}
			}
		}
		b.RewindOffsets(r.FormValue("group"), r.FormValue("topic"))
		return nil
	})
	action("/topics", func(r *http.Request) error {
		n, err := strconv.Atoi(r.FormValue("queues"))
		if err != nil || r.FormValue("topic") == "" {
			return inputError{fmt.Errorf("want topic and queues")}
		}
		if n < 1 {
			return inputError{fmt.Errorf("want at least 1 queue")}
		}
		b.CreateTopic(r.FormValue("topic"), n)
		return nil
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, r *http.Request) {
		type msg struct {
			MsgID          string            `json:"msgId"`
			OffsetMsgID    string            `json:"offsetMsgId"`
			Topic          string            `json:"topic"`
			QueueID        int               `json:"queueId"`
			QueueOffset    int64             `json:"queueOffset"`
			ReconsumeTimes int32             `json:"reconsumeTimes"`
			Properties     map[string]string `json:"properties"`
			Body           string            `json:"body"`
		}
		out := []msg{}
		for _, m := range b.Messages(r.FormValue("topic")) {
			out = append(out, msg{m.MsgId, m.OffsetMsgId, m.Topic, m.Queue.QueueId, m.QueueOffset, m.ReconsumeTimes, m.GetProperties(), string(m.Body)})
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /offsets", func(w http.ResponseWriter, r *http.Request) {
		reply(w, b.CommittedOffsets(r.FormValue("group"), r.FormValue("topic")))
	})
	mux.HandleFunc("GET /clients", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Clients()) })
	return mux
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// inputError is an error in a control request's parameters: 400, not 500.
type inputError struct{ error }

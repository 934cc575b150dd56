package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// ErrNotStarted means a Consumer has not been started (or its start has not
// succeeded yet): it takes no deliveries.
var ErrNotStarted = errors.New("exactlyonce: consumer not started")

// Ready reports whether the consumer can apply messages now: it returns nil
// when it is started, not shutting down, and its DataSources (the one of
// NewConsumer and those of WithDataSources given to NewConsumer) answer a
// ping within ctx. Otherwise it returns ErrNotStarted, ErrShutdown (from
// the moment Shutdown begins to drain), or the database's error, wrapped.
// It checks the state first and pings only a started consumer, so a probe
// costs one round trip per database.
func (c *Consumer) Ready(ctx context.Context) error {
	c.mu.Lock()
	started, stopped := c.started, c.stopped
	c.mu.Unlock()
	switch {
	case stopped:
		return ErrShutdown
	case !started:
		return ErrNotStarted
	}
	for i, ds := range append([]*mqdatasource.DataSource{c.ds}, c.cfg.dataSources...) {
		if err := ds.DB().PingContext(ctx); err != nil {
			return fmt.Errorf("exactlyonce: database %d of %d not reachable: %w", i+1, 1+len(c.cfg.dataSources), err)
		}
	}
	return nil
}

// readyTimeout bounds a readiness request's database pings, so that a
// database that does not answer cannot hold probe connections open.
const readyTimeout = 3 * time.Second

// ReadyHandler returns an http.Handler for a readiness probe (Kubernetes
// readinessProbe httpGet): it answers 200 "ok" when Ready returns nil, and
// 503 Service Unavailable with Ready's error as the body otherwise. The
// pings are bounded by the request's context and 3 seconds.
func (c *Consumer) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := c.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

package exactlyonce

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/go-sql-driver/mysql"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// tcpProxy forwards connections from a loopback address to target until
// stopped; start listens again on the same address.
type tcpProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{addr: dbtest.FreeAddr(t), target: target}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, client); server.Close() }()
			go func() { _, _ = io.Copy(client, server); client.Close() }()
		}
	}()
	return nil
}

// stop closes the listener and every forwarded connection: the database
// looks down.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// viaAddr returns e's DSN with the server's address replaced by addr, and
// the server's own address.
func viaAddr(t *testing.T, e *dbtest.Env, addr string) (dsn, server string) {
	t.Helper()
	if e.Name == "mysql" {
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		server, cfg.Addr = cfg.Addr, addr
		return cfg.FormatDSN(), server
	}
	u, err := url.Parse(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	server, u.Host = u.Host, addr
	return u.String(), server
}

// probe asks c's ReadyHandler and returns the status and body.
func probe(t *testing.T, c *Consumer) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

// TestE2EReady walks a Consumer through its readiness states: not started,
// ready, database down (through a proxy that is stopped), ready again when
// it comes back, draining from the moment Shutdown begins (a handler still
// running), and shut down. Ready and ReadyHandler must agree at each step.
func TestE2EReady(t *testing.T) {
	skipIfRace(t)
	onBrokers(t, testE2EReady)
}

func testE2EReady(t *testing.T, b e2eBroker) {
	e := oneDB(t)
	f := newFixture(t, e)
	_, server := viaAddr(t, e, "")
	px := newTCPProxy(t, server)
	dsn, _ := viaAddr(t, e, px.addr)
	ds, err := mqdatasource.Open(e.Driver, dsn, mqdatasource.WithTable(f.records))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	f.ds = ds
	topic, group := unique(t, "ready"), unique(t, "eo_ready")
	b.createTopic(t, topic, 1)
	c := newConsumer(t, f, b, group)

	ctx := context.Background()
	// check asks Ready and the handler; want is nil for ready, else an error
	// Ready's must match (errors.Is), or errAny for any error.
	check := func(step string, want error, wantCode int, wantBody string) {
		t.Helper()
		err := c.Ready(ctx)
		if (want == nil) != (err == nil) || (want != nil && want != errAny && !errors.Is(err, want)) {
			t.Errorf("%s: Ready: %v, want %v", step, err, want)
		}
		code, body := probe(t, c)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s: probe answered %d %q, want %d with %q", step, code, body, wantCode, wantBody)
		}
	}

	check("before Start", ErrNotStarted, http.StatusServiceUnavailable, "not started")
	running, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	startTx(t, c, topic, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
		if string(m.Body) == "hold" {
			once.Do(func() { close(running) })
			<-release
		}
		return f.applyMsg(ctx, tx, group, m)
	})
	check("started", nil, http.StatusOK, "ok")

	px.stop()
	check("database down", errAny, http.StatusServiceUnavailable, "database 1 of 1 not reachable")
	if err := px.start(); err != nil {
		t.Fatal(err)
	}
	check("database back", nil, http.StatusOK, "ok")

	send(t, newProducer(t, b), primitive.NewMessage(topic, []byte("hold")))
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		t.Fatal("the held message was not delivered")
	}
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(ctx) }()
	eventually(t, 10*time.Second, "Ready to report the drain", func() bool { return errors.Is(c.Ready(ctx), ErrShutdown) })
	check("draining", ErrShutdown, http.StatusServiceUnavailable, "shutting down")
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	check("shut down", ErrShutdown, http.StatusServiceUnavailable, "shutting down")
}

// errAny stands for "some error" in TestE2EReady: a database's error
// differs by driver.
var errAny = errors.New("any error")

// TestReadyStates: the states Ready tells apart without a broker, on the
// in-memory database (also under -race, where TestE2EReady is skipped).
func TestReadyStates(t *testing.T) {
	st := newFakeStore(t)
	c := &Consumer{ds: st.DataSource, cfg: newConfig([]Option{quiet}), gate: newGate(), client: &recorder{}}
	ctx := context.Background()
	if err := c.Ready(ctx); !errors.Is(err, ErrNotStarted) {
		t.Errorf("not started: %v, want ErrNotStarted", err)
	}
	c.started = true
	if err := c.Ready(ctx); err != nil {
		t.Errorf("started: %v, want nil", err)
	}
	if code, body := probe(t, c); code != http.StatusOK || body != "ok" {
		t.Errorf("started: probe answered %d %q", code, body)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); !errors.Is(err, ErrShutdown) {
		t.Errorf("shut down: %v, want ErrShutdown", err)
	}
	if code, _ := probe(t, c); code != http.StatusServiceUnavailable {
		t.Errorf("shut down: probe answered %d", code)
	}
}

package mqdatasource_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// cutMode says when the proxy drops a connection that sends COMMIT.
type cutMode int

const (
	cutNone          cutMode = iota
	cutBeforeCommit          // drop without forwarding COMMIT: it never runs
	cutAfterResponse         // forward COMMIT, wait for the server's answer, drop it: it ran
)

// proxy is a TCP proxy between the driver and the database server that can
// drop a connection around COMMIT, so the client cannot know the outcome.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  cutMode
	cut   chan struct{} // closed when a connection was dropped
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, cut: make(chan struct{})}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// armCommitCut makes the next COMMIT through the proxy drop its connection.
func (p *proxy) armCommitCut(m cutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
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
		go p.pipe(client, server)
	}
}

// takeCut reports (once) whether chunk is a COMMIT to cut, and how.
func (p *proxy) takeCut(chunk []byte) cutMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == cutNone || !bytes.Contains(bytes.ToLower(chunk), []byte("commit")) {
		return cutNone
	}
	m := p.mode
	p.mode = cutNone
	return m
}

// pipe copies client→server, watching for COMMIT, and server→client.
func (p *proxy) pipe(client, server net.Conn) {
	var (
		mu      sync.Mutex
		holding bool // swallow the server's next answer and drop
	)
	drop := func() {
		client.Close()
		server.Close()
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer drop()
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				mu.Lock()
				h := holding
				mu.Unlock()
				if h {
					return
				}
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer drop()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			switch p.takeCut(buf[:n]) {
			case cutBeforeCommit:
				drop()
				<-readerDone
				close(p.cut)
				return
			case cutAfterResponse:
				mu.Lock()
				holding = true
				mu.Unlock()
				if _, err := server.Write(buf[:n]); err == nil {
					<-readerDone
				}
				close(p.cut)
				return
			}
			if _, err := server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

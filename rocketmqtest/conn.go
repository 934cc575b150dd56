package rocketmqtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one client connection. Its reader goroutine decodes frames and hands
// them to the run loop; its writer goroutine drains an unbounded queue of
// outgoing frames, so the run loop never blocks on a slow client.
type conn struct {
	b      *Broker
	nc     net.Conn
	remote net.Addr

	mu      sync.Mutex
	out     []outFrame
	drain   bool          // close once out is written
	wake    chan struct{} // capacity 1: "out is not empty"
	closed  chan struct{}
	closeMu sync.Once
}

// outFrame is a command to write; body parts are written as they are, so a
// pull response references stored messages instead of copying them.
type outFrame struct {
	cmd  *Command
	body [][]byte
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{
		b:      b,
		nc:     nc,
		remote: nc.RemoteAddr(),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
}

func (c *conn) close() {
	c.closeMu.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
	})
}

// closeAfterWrites closes the connection once the frames queued so far are
// written, so responses sent just before a broker-initiated close arrive.
func (c *conn) closeAfterWrites() {
	c.mu.Lock()
	c.drain = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues a frame; it never blocks.
func (c *conn) send(f outFrame) {
	c.mu.Lock()
	c.out = append(c.out, f)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) readLoop() {
	c.b.readers.Add(1)
	defer c.b.wg.Done()
	defer c.b.readers.Add(-1)
	defer func() {
		c.close()
		// Through the request channel, so the run loop sees every request
		// read from the connection before it sees the connection go.
		select {
		case c.b.reqs <- &inbound{c: c, eof: true}:
		case <-c.b.done:
		}
	}()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		cmd, err := ReadFrame(r)
		if errors.Is(err, errFrame) {
			c.b.cfg.logger.Warn("rocketmqtest: closing connection", "remote", c.remote.String(), "err", err)
			return
		}
		if err != nil {
			c.logReadErr(err)
			return
		}
		if cmd.IsResponse() {
			// Clients answer nothing the broker waits for: the broker-to-client
			// requests it sends are one-way.
			continue
		}
		in := &inbound{c: c, cmd: cmd}
		select {
		case c.b.reqs <- in:
		case <-c.b.done:
			return
		}
	}
}

func (c *conn) logReadErr(err error) {
	select {
	case <-c.closed:
		return // closed by the broker
	default:
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		c.b.cfg.logger.Debug("rocketmqtest: client disconnected", "remote", c.remote.String())
		return
	}
	c.b.cfg.logger.Info("rocketmqtest: read error, closing connection", "remote", c.remote.String(), "err", err)
}

func (c *conn) writeLoop() {
	c.b.writers.Add(1)
	defer c.b.wg.Done()
	defer c.b.writers.Add(-1)
	var (
		batch []outFrame
		bufs  net.Buffers
		hdr   []byte
	)
	for {
		select {
		case <-c.wake:
		case <-c.closed:
			return
		}
		c.mu.Lock()
		batch, c.out = c.out, batch[:0]
		drain := c.drain
		c.mu.Unlock()
		if len(batch) == 0 && drain {
			c.close()
			return
		}
		bufs = bufs[:0]
		hdr = hdr[:0]
		// Headers go into one buffer; remember where each starts so bodies can
		// be interleaved without copying them.
		type span struct{ from, to int }
		spans := make([]span, len(batch))
		for i, f := range batch {
			n := 0
			for _, p := range f.body {
				n += len(p)
			}
			from := len(hdr)
			hdr = appendFrameHead(hdr, f.cmd, n)
			spans[i] = span{from, len(hdr)}
		}
		for i, f := range batch {
			bufs = append(bufs, hdr[spans[i].from:spans[i].to])
			bufs = append(bufs, f.body...)
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := bufs.WriteTo(c.nc); err != nil {
			c.close()
			return
		}
		clear(batch)
		if drain {
			c.close()
			return
		}
	}
}

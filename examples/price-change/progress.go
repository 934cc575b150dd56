package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress writes a status line while the demo works: on a terminal one
// line rewritten in place, otherwise a plain line every few seconds. Events
// (a consumer restarted, offsets rewound) are printed on lines of their own.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	start    time.Time
	line     string    // the status line shown (tty) or last printed (without the time)
	lastLine time.Time // when a plain status line was last printed
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), start: time.Now()}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) elapsed() string {
	return fmt.Sprintf("%5.1fs", time.Since(p.start).Seconds())
}

// status replaces the status line.
func (p *progress) status(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := fmt.Sprintf(format, args...)
	if p.tty {
		p.line = p.elapsed() + "  " + text
		fmt.Fprintf(p.w, "\r\033[K%s", p.line)
		return
	}
	// Plain lines: every 2 s while something changes, every 10 s otherwise.
	since := time.Since(p.lastLine)
	if since >= 10*time.Second || (since >= 2*time.Second && text != p.line) {
		fmt.Fprintln(p.w, p.elapsed()+"  "+text)
		p.line, p.lastLine = text, time.Now()
	}
}

// event prints a line of its own above the status line.
func (p *progress) event(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := p.elapsed() + "  " + strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n%s", msg, p.line)
		return
	}
	fmt.Fprintln(p.w, msg)
}

// done clears the status line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.line != "" {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = ""
	}
}

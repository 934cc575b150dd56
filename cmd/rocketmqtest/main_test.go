package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRun starts the command in process, uses the control API and stops it
// with SIGTERM.
func TestRun(t *testing.T) {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-control", "127.0.0.1:0", "-topic", "demo:3", "-data", t.TempDir()}, outW, errW, stop)
		outW.Close()
		errW.Close()
	}()
	addr, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("first line %q is not host:port", addr)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()

	line, err := bufio.NewReader(errR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	ctl := regexp.MustCompile(`http://\S+`).FindString(line)
	if ctl == "" {
		t.Fatalf("no control URL in %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, errR) }()
	post := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Post(ctl+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, err)
		}
		return v
	}
	if v := post("/faults/delay-responses?code=10&d=10ms"); v["id"] != float64(1) {
		t.Errorf("fault id %v", v["id"])
	}
	post("/pause")
	post("/resume")
	post("/restart")
	req, _ := http.NewRequest(http.MethodDelete, ctl+"/faults/1", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE fault: %v", err)
	}
	resp, err := http.Get(ctl + "/messages?topic=demo")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []any
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil || len(msgs) != 0 {
		t.Errorf("messages %v %v", msgs, err)
	}
	resp.Body.Close()

	stop <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
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
	post("/rewind?group=g&topic=demo")
	for q, want := range map[string]string{
		"/topics?topic=x&queues=many": "want topic and queues",
		"/topics?queues=2":            "want topic and queues",
		"/topics?topic=x&queues=0":    "want at least 1 queue",
		"/rewind?topic=demo":          "want group",
		"/rewind?group=g":             "want topic",
	} {
		resp, err := http.Post(ctl+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
			t.Errorf("POST %s: %d %q, want 400 saying %q", q, resp.StatusCode, body, want)
		}
	}
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

// TestKilledProcessKeepsData builds the command, starts it with -data, sends
// a message, kills the process with SIGKILL and starts it again: the message
// and the committed offset are still there.
func TestKilledProcessKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "rocketmqtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	start := func() (*exec.Cmd, string) {
		t.Helper()
		cmd := exec.Command(bin, "-data", data, "-topic", "kept:1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return cmd, strings.TrimSpace(addr)
	}

	cmd, addr := start()
	send := &rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Opaque: 1, Body: []byte("survives"),
		ExtFields: map[string]string{"producerGroup": "p", "topic": "kept", "queueId": "0", "sysFlag": "0",
			"bornTimestamp": "1", "flag": "0", "properties": "UNIQ_KEY\x01ID1\x02"}}
	if resp := call(t, addr, send); resp.Code != 0 {
		t.Fatalf("send: %+v", resp)
	}
	pull := &rocketmqtest.Command{Code: rocketmqtest.CodePullMessage, Opaque: 3, ExtFields: map[string]string{
		"consumerGroup": "g", "topic": "kept", "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
		"sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "expressionType": "TAG"}}
	// The group's first pull, without which (or a heartbeat) the broker
	// refuses its commits, as Apache RocketMQ does.
	if resp := call(t, addr, pull); resp.Code != 0 {
		t.Fatalf("pull: %+v", resp)
	}
	commit := &rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset, Opaque: 2,
		ExtFields: map[string]string{"consumerGroup": "g", "topic": "kept", "queueId": "0", "commitOffset": "1"}}
	if resp := call(t, addr, commit); resp.Code != 0 {
		t.Fatalf("commit: %+v", resp)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, addr = start()
	resp := call(t, addr, pull)
	if resp.Code != 0 || !strings.Contains(string(resp.Body), "survives") || !strings.Contains(string(resp.Body), "ID1") {
		t.Fatalf("pull after kill: code %d body %q", resp.Code, resp.Body)
	}
	query := &rocketmqtest.Command{Code: rocketmqtest.CodeQueryConsumerOffset, Opaque: 4,
		ExtFields: map[string]string{"consumerGroup": "g", "topic": "kept", "queueId": "0"}}
	if resp := call(t, addr, query); resp.ExtFields["offset"] != "1" {
		t.Fatalf("committed offset after kill: %+v", resp)
	}
}

// call sends one request on a new connection and returns the response.
func call(t *testing.T, addr string, req *rocketmqtest.Command) *rocketmqtest.Command {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(rocketmqtest.EncodeFrame(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := rocketmqtest.ReadFrame(nc)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRunBadTopicFlag checks that a -topic with no queues is refused, not
// turned into one queue, and so are the other flags' bad values.
func TestRunBadTopicFlag(t *testing.T) {
	for _, arg := range []string{"x:0", "x:-2", "x", ":3"} {
		err := run([]string{"-topic", arg}, io.Discard, io.Discard, make(chan os.Signal))
		if err == nil || !strings.Contains(err.Error(), arg) {
			t.Errorf("-topic %s: %v", arg, err)
		}
	}
	// The other flags are checked by rocketmqtest.New, whose errors name the
	// option the flag sets and the value.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-queues", "0"}, "WithDefaultQueues(0)"},
		{[]string{"-delay-scale", "-1s"}, "WithDelayScale(-1s)"},
		{[]string{"-reconnect-grace", "-1s"}, "WithReconnectGrace(-1s)"},
	} {
		err := run(tc.args, io.Discard, io.Discard, make(chan os.Signal))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// TestDeleteFaultCountsEveryHit removes DuplicateSends faults while a client
// sends without pause: the hits DELETE reports must add up to the duplicates
// stored, including hits between reading the count and removing the fault.
func TestDeleteFaultCountsEveryHit(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("d", 1))
	srv := httptest.NewServer(newControl(b))
	defer srv.Close()
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var (
		stop  atomic.Bool
		sends int64
		done  = make(chan error, 1)
	)
	go func() {
		send := rocketmqtest.EncodeFrame(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Body: []byte("m"),
			ExtFields: map[string]string{"producerGroup": "p", "topic": "d", "queueId": "0", "sysFlag": "0",
				"bornTimestamp": "1", "flag": "0", "properties": ""}})
		for !stop.Load() {
			if _, err := nc.Write(send); err != nil {
				done <- err
				return
			}
			if resp, err := rocketmqtest.ReadFrame(nc); err != nil || resp.Code != 0 {
				done <- fmt.Errorf("send: %v %+v", err, resp)
				return
			}
			sends++
		}
		done <- nil
	}()
	var reported int64
	// Many rounds: a hit between the two is a matter of timing.
	for range 200 {
		resp, err := http.Post(srv.URL+"/faults/duplicate-sends", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var added struct{ ID int }
		err = json.NewDecoder(resp.Body).Decode(&added)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/faults/%d", srv.URL, added.ID), nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var removed struct{ Hits int64 }
		err = json.NewDecoder(resp.Body).Decode(&removed)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		reported += removed.Hits
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dups := b.MaxOffset("d", 0) - sends; dups != reported {
		t.Errorf("%d duplicates stored, DELETE reported %d hits", dups, reported)
	}
}

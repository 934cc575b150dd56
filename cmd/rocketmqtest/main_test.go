package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
	for _, q := range []string{"/topics?topic=x&queues=many", "/topics?queues=2", "/topics?topic=x&queues=0"} {
		resp, err := http.Post(ctl+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s: %d, want 400", q, resp.StatusCode)
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
	pull := &rocketmqtest.Command{Code: rocketmqtest.CodePullMessage, Opaque: 3, ExtFields: map[string]string{
		"consumerGroup": "g", "topic": "kept", "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
		"sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "expressionType": "TAG"}}
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
// turned into one queue.
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

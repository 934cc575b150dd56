package rocketmqtest_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func rawSend(t *testing.T, c *rawConn, topic string, queue int, body, props string) *rocketmqtest.Command {
	t.Helper()
	resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Body: []byte(body),
		ExtFields: map[string]string{"producerGroup": "p", "topic": topic, "queueId": strconv.Itoa(queue),
			"sysFlag": "0", "bornTimestamp": "1", "flag": "0", "properties": props}})
	if err != nil || resp.Code != 0 {
		t.Fatalf("send: %v %+v", err, resp)
	}
	return resp
}

func TestDataDirSurvivesProcessRestart(t *testing.T) {
	dir := t.TempDir()
	opts := []rocketmqtest.Option{rocketmqtest.WithDataDir(dir), rocketmqtest.WithDelayScale(200 * time.Millisecond)}
	b1, err := rocketmqtest.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	b1.CreateTopic("kept", 2)
	c := rawDial(b1.Addr())
	for i := range 5 {
		rawSend(t, c, "kept", i%2, fmt.Sprint("m", i), "UNIQ_KEY\x01K"+strconv.Itoa(i)+"\x02")
	}
	rawSend(t, c, "kept", 0, "delayed", "DELAY\x013\x02") // 10 s, scaled to 2 s: still parked across the restart
	hb := `{"clientID":"c","producerDataSet":[],"consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"kept","subString":"*","subVersion":1,"expressionType":"TAG"}]}]}`
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Body: []byte(hb)}); err != nil || resp.Code != 0 {
		t.Fatalf("heartbeat: %v %+v", err, resp)
	}
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset,
		ExtFields: map[string]string{"consumerGroup": "g", "topic": "kept", "queueId": "1", "commitOffset": "2"}}); err != nil || resp.Code != 0 {
		t.Fatalf("commit: %v %+v", err, resp)
	}
	// A group met only in a pull is in the subscription-group table too.
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodePullMessage, ExtFields: map[string]string{
		"consumerGroup": "pulled", "topic": "kept", "queueId": "0", "queueOffset": "0", "maxMsgNums": "1", "sysFlag": "4",
		"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0"}}); err != nil || resp.Code != 0 {
		t.Fatalf("pull: %v %+v", err, resp)
	}
	before := b1.Messages("kept")
	c.close()
	b1.Close() // as good as a kill: every record is already written

	// A torn last record, as a kill in the middle of a write leaves.
	f, err := os.OpenFile(filepath.Join(dir, "rocketmqtest.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0, 0, 1, 0, 'M', 1, 2})
	f.Close()

	b2 := rocketmqtest.NewBroker(t, opts...)
	after := b2.Messages("kept")
	if len(after) != len(before) {
		t.Fatalf("%d messages after restart, want %d", len(after), len(before))
	}
	for i := range before {
		x, y := before[i], after[i]
		if x.MsgId != y.MsgId || x.OffsetMsgId != y.OffsetMsgId || x.QueueOffset != y.QueueOffset || string(x.Body) != string(y.Body) {
			t.Errorf("message %d: %s %s %d %q, was %s %s %d %q", i, y.MsgId, y.OffsetMsgId, y.QueueOffset, y.Body, x.MsgId, x.OffsetMsgId, x.QueueOffset, x.Body)
		}
	}
	if off := b2.CommittedOffset("g", "kept", 1); off != 2 {
		t.Errorf("committed offset %d, want 2", off)
	}
	// The subscription-group table survived: its groups commit before any
	// heartbeat or pull, as on a Java broker (subscriptionGroup.json).
	c3 := rawDial(b2.Addr())
	defer c3.close()
	for _, g := range []string{"g", "pulled"} {
		if resp, err := c3.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset,
			ExtFields: map[string]string{"consumerGroup": g, "topic": "kept", "queueId": "0", "commitOffset": "1"}}); err != nil || resp.Code != 0 {
			t.Errorf("commit of %s after restart: %v %+v", g, err, resp)
		}
	}
	eventually(t, 10*time.Second, "delayed message delivered after restart", func() bool { return len(b2.Messages("kept")) == 6 })
	// The group's subscription survived: a pull without one of its own works
	// before any heartbeat.
	c2 := rawDial(b2.Addr())
	defer c2.close()
	if resp, err := c2.call(pullReq("kept", 1, 0, 0, "")); err != nil || resp.Code != 0 {
		t.Fatalf("pull after restart: %v %+v", err, resp)
	}
	// New messages continue the commit log.
	rawSend(t, c2, "kept", 1, "new", "")
	all := b2.Messages("kept")
	last := all[len(all)-1]
	if string(last.Body) != "new" || last.QueueOffset != 2 || last.CommitLogOffset <= all[len(all)-2].CommitLogOffset {
		t.Errorf("new message at queue offset %d, commit log %d", last.QueueOffset, last.CommitLogOffset)
	}
}

func TestDelayLevels(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("d", 1),
		rocketmqtest.WithDelayLevels(20*time.Millisecond, 40*time.Millisecond))
	c := rawDial(b.Addr())
	defer c.close()
	start := time.Now()
	rawSend(t, c, "d", 0, "capped", "DELAY\x0199\x02") // beyond the last level: the last one
	rawSend(t, c, "d", 0, "first", "DELAY\x011\x02")
	if n := len(b.QueueMessages("SCHEDULE_TOPIC_XXXX", 1)); n != 1 {
		t.Errorf("%d messages in the last level's queue, want 1", n)
	}
	eventually(t, 5*time.Second, "both delivered", func() bool { return len(b.Messages("d")) == 2 })
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("delivered after %v, want at least 40ms", d)
	}
	if got := b.Messages("d"); string(got[0].Body) != "first" || string(got[1].Body) != "capped" {
		t.Errorf("delivery order %q, %q; want the shorter delay first", got[0].Body, got[1].Body)
	}
}

// TestDataDirRecordsOffsetChangesOnly checks that committing the offset a
// queue already has writes nothing, while a first commit, even of 0, and a
// changed one are written and replayed.
func TestDataDirRecordsOffsetChangesOnly(t *testing.T) {
	dir := t.TempDir()
	b1, err := rocketmqtest.New(rocketmqtest.WithDataDir(dir), rocketmqtest.WithTopic("o", 1))
	if err != nil {
		t.Fatal(err)
	}
	c := rawDial(b1.Addr())
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Body: consumerHeartbeat("g")}); err != nil || resp.Code != 0 {
		t.Fatalf("heartbeat: %v %+v", err, resp)
	}
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, "rocketmqtest.log"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	commit := func(off int64) {
		t.Helper()
		if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset,
			ExtFields: map[string]string{"consumerGroup": "g", "topic": "o", "queueId": "0", "commitOffset": strconv.FormatInt(off, 10)}}); err != nil || resp.Code != 0 {
			t.Fatalf("commit %d: %v %+v", off, err, resp)
		}
	}
	for _, step := range []struct {
		off     int64
		written bool
	}{{0, true}, {0, false}, {3, true}, {3, false}, {3, false}} {
		before := size()
		commit(step.off)
		if written := size() > before; written != step.written {
			t.Errorf("commit of %d: written %v, want %v", step.off, written, step.written)
		}
	}
	c.close()
	b1.Close()
	b2 := rocketmqtest.NewBroker(t, rocketmqtest.WithDataDir(dir))
	if off := b2.CommittedOffset("g", "o", 0); off != 3 {
		t.Errorf("replayed offset %d, want 3", off)
	}
}

// TestDataDirWithoutKnownGroupRecords replays a log written before 'K'
// records (the subscription-group table) existed: its groups are known from
// their committed offsets ('O') and subscriptions ('G'), so they commit
// after the restart before any heartbeat or pull, while a group the log
// never names is still refused.
func TestDataDirWithoutKnownGroupRecords(t *testing.T) {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	var log []byte
	record := func(kind byte, payload []byte) {
		log = binary.BigEndian.AppendUint32(log, uint32(1+len(payload)))
		log = append(log, kind)
		log = append(log, payload...)
	}
	topic := str(nil, "old")
	topic = binary.BigEndian.AppendUint32(topic, 1)
	topic = binary.BigEndian.AppendUint32(topic, 1)
	topic = binary.BigEndian.AppendUint32(topic, 6) // read | write
	record('T', topic)
	off := str(str(nil, "committed"), "old")
	off = binary.BigEndian.AppendUint32(off, 0)
	off = binary.BigEndian.AppendUint64(off, 1)
	record('O', off)
	sub := append(str(str(nil, "subscribed"), "old"), 0)
	sub = binary.BigEndian.AppendUint64(sub, 1)
	sub = str(str(sub, "TAG"), "*")
	record('G', sub)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rocketmqtest.log"), log, 0o644); err != nil {
		t.Fatal(err)
	}

	b := rocketmqtest.NewBroker(t, rocketmqtest.WithDataDir(dir))
	if got := b.CommittedOffset("committed", "old", 0); got != 1 {
		t.Fatalf("replayed offset %d, want 1", got)
	}
	c := rawDial(b.Addr())
	defer c.close()
	commit := func(group string) *rocketmqtest.Command {
		t.Helper()
		resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset,
			ExtFields: map[string]string{"consumerGroup": group, "topic": "old", "queueId": "0", "commitOffset": "2"}})
		if err != nil {
			t.Fatalf("commit of %s: %v", group, err)
		}
		return resp
	}
	for _, g := range []string{"committed", "subscribed"} {
		if resp := commit(g); resp.Code != 0 {
			t.Errorf("commit of %s after restart: %+v", g, resp)
		} else if got := b.CommittedOffset(g, "old", 0); got != 2 {
			t.Errorf("%s: committed offset %d, want 2", g, got)
		}
	}
	if resp := commit("never"); resp.Code != 26 {
		t.Errorf("commit of a group the log never names: %+v, want SUBSCRIPTION_GROUP_NOT_EXIST", resp)
	}
}

package rocketmqtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

func pullReq(topic string, queue int, offset int64, sysFlag int, sub string) *rocketmqtest.Command {
	return &rocketmqtest.Command{Code: rocketmqtest.CodePullMessage, ExtFields: map[string]string{
		"consumerGroup": "g", "topic": topic, "queueId": strconv.Itoa(queue), "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": strconv.Itoa(sysFlag), "commitOffset": "0", "suspendTimeoutMillis": "300",
		"subscription": sub, "expressionType": "TAG"}}
}

const flagSubscription = 4

func TestPullStatuses(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("p", 2), rocketmqtest.WithAutoCreateTopics(false))
	c := rawDial(b.Addr())
	defer c.close()
	for i := range 3 {
		tag := "a"
		if i == 1 {
			tag = "b"
		}
		rawSend(t, c, "p", 0, fmt.Sprint("m", i), "TAGS\x01"+tag+"\x02")
	}
	cases := []struct {
		name       string
		req        *rocketmqtest.Command
		code       int16
		next, msgs int
	}{
		{"found", pullReq("p", 0, 0, flagSubscription, "*"), 0, 3, 3},
		{"found from 1", pullReq("p", 0, 1, flagSubscription, "*"), 0, 3, 2},
		{"tag filter", pullReq("p", 0, 0, flagSubscription, "a"), 0, 3, 2},
		{"tag filter, no match", pullReq("p", 0, 0, flagSubscription, "zzz"), 20, 3, 0},
		{"offset at max", pullReq("p", 0, 3, flagSubscription, "*"), 19, 3, 0},
		{"offset past max", pullReq("p", 0, 9, flagSubscription, "*"), 21, 3, 0}, // to the max, as 5.x
		{"negative offset", pullReq("p", 0, -1, flagSubscription, "*"), 21, 0, 0},
		{"empty queue at 0", pullReq("p", 1, 0, flagSubscription, "*"), 19, 0, 0},
		{"empty queue past 0", pullReq("p", 1, 4, flagSubscription, "*"), 21, 0, 0},
		{"no heartbeat, no subscription", pullReq("p", 0, 0, 0, ""), 24, -1, 0},
		{"unknown topic", pullReq("nope", 0, 0, flagSubscription, "*"), 17, -1, 0},
		{"bad queue", pullReq("p", 7, 0, flagSubscription, "*"), 1, -1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.call(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.code {
				t.Fatalf("code %d (%s), want %d", resp.Code, resp.Remark, tc.code)
			}
			if tc.next >= 0 && resp.ExtFields["nextBeginOffset"] != strconv.Itoa(tc.next) {
				t.Errorf("nextBeginOffset %s, want %d", resp.ExtFields["nextBeginOffset"], tc.next)
			}
			if n := len(decodeBodies(resp.Body)); n != tc.msgs {
				t.Errorf("%d messages, want %d", n, tc.msgs)
			}
			if tc.code == 0 && (resp.ExtFields["maxOffset"] != "3" || resp.ExtFields["minOffset"] != "0" || resp.ExtFields["suggestWhichBrokerId"] != "0") {
				t.Errorf("fields %v", resp.ExtFields)
			}
		})
	}
	sql := pullReq("p", 0, 0, flagSubscription, "a > 1")
	sql.ExtFields["expressionType"] = "SQL92"
	if resp, _ := c.call(sql); resp == nil || resp.Code != 1 {
		t.Errorf("SQL92 pull: %+v", resp)
	}
}

func TestLongPolling(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("lp", 1))
	puller, sender := rawDial(b.Addr()), rawDial(b.Addr())
	defer puller.close()
	defer sender.close()

	// Nothing arrives: answered PULL_NOT_FOUND after suspendTimeoutMillis.
	start := time.Now()
	resp, err := puller.call(pullReq("lp", 0, 0, flagSubscription|2, "*"))
	if err != nil || resp.Code != 19 {
		t.Fatalf("%v %+v", err, resp)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %v, want the 300ms suspend time", d)
	}

	// A message that does not match leaves the pull waiting; one that does
	// answers it at once.
	req := pullReq("lp", 0, 0, flagSubscription|2, "want")
	req.ExtFields["suspendTimeoutMillis"] = "20000"
	got := make(chan *rocketmqtest.Command, 1)
	go func() {
		r, _ := puller.call(req)
		got <- r
	}()
	time.Sleep(50 * time.Millisecond) // let the pull be held; the assertion does not depend on it
	rawSend(t, sender, "lp", 0, "other", "TAGS\x01other\x02")
	rawSend(t, sender, "lp", 0, "wanted", "TAGS\x01want\x02")
	select {
	case r := <-got:
		if r == nil || r.Code != 0 {
			t.Fatalf("%+v", r)
		}
		if bodies := decodeBodies(r.Body); fmt.Sprint(bodies) != "[wanted]" {
			t.Errorf("bodies %v", bodies)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held pull not answered when a matching message arrived")
	}
}

func TestOffsetRequests(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("o", 1))
	c := rawDial(b.Addr())
	defer c.close()
	call := func(code int16, fields map[string]string) *rocketmqtest.Command {
		t.Helper()
		resp, err := c.call(&rocketmqtest.Command{Code: code, ExtFields: fields})
		if err != nil || resp.Code != 0 {
			t.Fatalf("code %d: %v %+v", code, err, resp)
		}
		return resp
	}
	q := map[string]string{"consumerGroup": "g", "topic": "o", "queueId": "0"}
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeQueryConsumerOffset, ExtFields: q}); err != nil || resp.Code != 22 {
		t.Errorf("new group, empty queue: %v %+v, want QUERY_NOT_FOUND", err, resp)
	}
	// A group the broker never met (no heartbeat, pull or send-back) cannot
	// commit, as on Apache RocketMQ 5.x; the query above did not add it.
	unknown := map[string]string{"consumerGroup": "g", "topic": "o", "queueId": "0", "commitOffset": "3"}
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateConsumerOffset, ExtFields: unknown}); err != nil ||
		resp.Code != 26 || resp.Remark != "Group g not exist!" || b.CommittedOffset("g", "o", 0) != -1 {
		t.Errorf("commit of an unknown group: %v %+v, committed %d; want SUBSCRIPTION_GROUP_NOT_EXIST, nothing stored", err, resp, b.CommittedOffset("g", "o", 0))
	}
	// A pull adds its group, as PullMessageProcessor does (so do a heartbeat
	// and a send-back), found or not (here NO_MESSAGE_IN_QUEUE).
	if resp, err := c.call(pullReq("o", 0, 0, flagSubscription, "")); err != nil || resp.Code != 19 {
		t.Fatalf("pull: %v %+v", err, resp)
	}
	before := time.Now().UnixMilli()
	for i := range 4 {
		rawSend(t, c, "o", 0, fmt.Sprint(i), "")
		if i == 1 {
			time.Sleep(5 * time.Millisecond) // distinct store timestamps around "before"
		}
	}
	call(rocketmqtest.CodeUpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "o", "queueId": "0", "commitOffset": "3"})
	if off := call(rocketmqtest.CodeQueryConsumerOffset, q).ExtFields["offset"]; off != "3" {
		t.Errorf("committed offset %s, want 3", off)
	}
	if off := call(rocketmqtest.CodeGetMaxOffset, map[string]string{"topic": "o", "queueId": "0"}).ExtFields["offset"]; off != "4" {
		t.Errorf("max offset %s", off)
	}
	if off := call(rocketmqtest.CodeGetMinOffset, map[string]string{"topic": "o", "queueId": "0"}).ExtFields["offset"]; off != "0" {
		t.Errorf("min offset %s", off)
	}
	search := func(ts int64) string {
		return call(rocketmqtest.CodeSearchOffsetByTime, map[string]string{"topic": "o", "queueId": "0", "timestamp": strconv.FormatInt(ts, 10)}).ExtFields["offset"]
	}
	if off := search(before - 1000); off != "0" {
		t.Errorf("search before all: %s", off)
	}
	if off := search(time.Now().UnixMilli() + 1000); off != "4" {
		t.Errorf("search after all: %s", off)
	}
	third := b.Messages("o")[2].StoreTimestamp
	if off := search(third); off != "2" && b.Messages("o")[1].StoreTimestamp != third {
		t.Errorf("search at the third message's store time: %s", off)
	}
}

func TestTopicsAndRoutes(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithAutoCreateTopics(false))
	c := rawDial(b.Addr())
	defer c.close()
	route := func(topic string) (*rocketmqtest.Command, map[string]any) {
		resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeGetRouteInfoByTopic, ExtFields: map[string]string{"topic": topic}})
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		_ = json.Unmarshal(resp.Body, &v)
		return resp, v
	}
	if resp, _ := route("absent"); resp.Code != 17 {
		t.Errorf("unknown topic: code %d, want 17", resp.Code)
	}
	resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Body: []byte("x"), ExtFields: map[string]string{
		"producerGroup": "p", "topic": "absent", "queueId": "0", "sysFlag": "0", "bornTimestamp": "1", "flag": "0", "properties": ""}})
	if err != nil || resp.Code != 17 {
		t.Errorf("send to unknown topic: %v %+v", err, resp)
	}
	if resp, _ := route("TBW102"); resp.Code != 0 {
		t.Errorf("TBW102 route: %d", resp.Code)
	}
	resp, err = c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUpdateAndCreateTopic, ExtFields: map[string]string{
		"topic": "made", "readQueueNums": "3", "writeQueueNums": "2", "perm": "6"}})
	if err != nil || resp.Code != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	_, v := route("made")
	qd := v["queueDatas"].([]any)[0].(map[string]any)
	if qd["readQueueNums"] != float64(3) || qd["writeQueueNums"] != float64(2) || qd["perm"] != float64(6) {
		t.Errorf("route %v", v)
	}
	if resp, _ := route("%RETRY%g"); resp.Code != 0 {
		t.Errorf("retry topic route: %d", resp.Code)
	}
}

func TestGroupMembershipAndNotify(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("m", 2))
	hb := func(id string) []byte {
		return []byte(`{"clientID":"` + id + `","producerDataSet":[],"consumerDataSet":[{"groupName":"grp","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"m","subString":"*","subVersion":1,"expressionType":"TAG"}]}]}`)
	}
	a, bb := dial(t, b), dial(t, b)
	// notified reads A's notifications, after any already collected.
	notified := func() int {
		t.Helper()
		a.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeGetMinOffset, Opaque: 99, ExtFields: map[string]string{"topic": "m", "queueId": "0"}})
		n := len(a.notes)
		for _, note := range a.notes {
			if note.Code != rocketmqtest.CodeNotifyConsumerIDs || !note.Oneway() || note.ExtFields["consumerGroup"] != "grp" {
				t.Errorf("unexpected broker request %+v", note)
			}
		}
		a.notes = nil
		return n
	}
	a.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Opaque: 1, Body: hb("A")})
	if n := notified(); n != 1 {
		t.Errorf("%d notifications for A joining, want 1", n)
	}
	bb.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Opaque: 1, Body: hb("B")})
	if n := notified(); n != 1 {
		t.Errorf("%d notifications for B joining, want 1", n)
	}
	list := a.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeGetConsumerListByGroup, Opaque: 2, ExtFields: map[string]string{"consumerGroup": "grp"}})
	if string(list.Body) != `{"consumerIdList":["A","B"]}` {
		t.Errorf("consumer list %s", list.Body)
	}
	a.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Opaque: 3, Body: hb("A")})
	if n := notified(); n != 0 {
		t.Errorf("%d notifications for a repeated heartbeat, want 0", n)
	}
	bb.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeUnregisterClient, Opaque: 4, ExtFields: map[string]string{"clientID": "B", "consumerGroup": "grp"}})
	if n := notified(); n != 1 {
		t.Errorf("%d notifications for B leaving, want 1", n)
	}
	if ids := b.ConsumerIDs("grp"); !slices.Equal(ids, []string{"A"}) {
		t.Errorf("ids %v", ids)
	}
	// A closed connection leaves too.
	_ = a.nc.Close()
	eventually(t, 5*time.Second, "A gone", func() bool { return len(b.ConsumerIDs("grp")) == 0 })
	none := bb.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeGetConsumerListByGroup, Opaque: 5, ExtFields: map[string]string{"consumerGroup": "grp"}})
	if none.Code != 1 {
		t.Errorf("empty group: code %d", none.Code)
	}
}

// TestSubscriptionVersion checks that a heartbeat replaces a group's
// subscription only with a higher subVersion, as
// ConsumerGroupInfo.updateSubscription does: an older or equal one, even with
// another expression, leaves it.
func TestSubscriptionVersion(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("s", 1))
	c := rawDial(b.Addr())
	defer c.close()
	rawSend(t, c, "s", 0, "tagged a", "TAGS\x01a\x02")
	rawSend(t, c, "s", 0, "tagged b", "TAGS\x01b\x02")
	for _, step := range []struct {
		version int
		expr    string
		want    string // what the group's subscription pulls
	}{
		{5, "a", "[tagged a]"},
		{3, "b", "[tagged a]"},
		{5, "b", "[tagged a]"},
		{6, "b", "[tagged b]"},
	} {
		hb := fmt.Sprintf(`{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"s","subString":%q,"subVersion":%d,"expressionType":"TAG"}]}]}`, step.expr, step.version)
		if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Body: []byte(hb)}); err != nil || resp.Code != 0 {
			t.Fatalf("heartbeat: %v %+v", err, resp)
		}
		resp, err := c.call(pullReq("s", 0, 0, 0, ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(decodeBodies(resp.Body)); got != step.want {
			t.Errorf("after subVersion %d %q: pulled %s, want %s", step.version, step.expr, got, step.want)
		}
	}
}

func TestQueueLocks(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLockExpiry(time.Second)) // long enough for the locks taken to outlive the checks under -race
	c := rawDial(b.Addr())
	defer c.close()
	lock := func(client string, queues ...int) []int {
		t.Helper()
		var mqs []string
		for _, q := range queues {
			mqs = append(mqs, fmt.Sprintf(`{"topic":"t","brokerName":"broker-a","queueId":%d}`, q))
		}
		body := fmt.Sprintf(`{"consumerGroup":"g","clientId":%q,"mqSet":[%s]}`, client, strings.Join(mqs, ","))
		resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeLockBatchMQ, Body: []byte(body)})
		if err != nil || resp.Code != 0 {
			t.Fatalf("lock: %v %+v", err, resp)
		}
		var v struct {
			LockOKMQSet []struct{ QueueID int } `json:"lockOKMQSet"`
		}
		if err := json.Unmarshal(resp.Body, &v); err != nil {
			t.Fatal(err)
		}
		var ok []int
		for _, mq := range v.LockOKMQSet {
			ok = append(ok, mq.QueueID)
		}
		return ok
	}
	if got := lock("A", 0, 1); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("A locked %v", got)
	}
	if got := lock("B", 0, 2); !slices.Equal(got, []int{2}) {
		t.Errorf("B locked %v, want [2]", got)
	}
	if owner := b.LockOwner("g", "t", 0); owner != "A" {
		t.Errorf("owner %q", owner)
	}
	// A unlocks 0; B can take it. A cannot unlock B's queue 2.
	body := `{"consumerGroup":"g","clientId":"A","mqSet":[{"topic":"t","brokerName":"broker-a","queueId":0},{"topic":"t","brokerName":"broker-a","queueId":2}]}`
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeUnlockBatchMQ, Body: []byte(body)}); err != nil || resp.Code != 0 {
		t.Fatal(err, resp)
	}
	if got := lock("B", 0); !slices.Equal(got, []int{0}) {
		t.Errorf("B after unlock %v", got)
	}
	if owner := b.LockOwner("g", "t", 2); owner != "B" {
		t.Errorf("queue 2 owner %q after A's unlock", owner)
	}
	// A's lock on 1 expires without renewal.
	eventually(t, 10*time.Second, "lock expiry", func() bool { return b.LockOwner("g", "t", 1) == "" })
	if got := lock("B", 1); !slices.Equal(got, []int{1}) {
		t.Errorf("B after expiry %v", got)
	}
}

func TestReconnectGrace(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithReconnectGrace(time.Second)) // long enough for A to come back in time under -race
	hb := func(id string) *rocketmqtest.Command {
		return &rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Opaque: 1, Body: []byte(`{"clientID":"` + id +
			`","consumerDataSet":[{"groupName":"grp","subscriptionDataSet":[{"topic":"m","subString":"*","subVersion":1,"expressionType":"TAG"}]}]}`)}
	}
	dial(t, b).roundTrip(hb("A"))
	dial(t, b).roundTrip(hb("B"))
	b.CloseClientConnections()
	if ids := b.ConsumerIDs("grp"); !slices.Equal(ids, []string{"A", "B"}) {
		t.Fatalf("members right after the broker closed the connections: %v", ids)
	}
	// A comes back: still the same members, nobody is told anything.
	a := dial(t, b)
	a.roundTrip(hb("A"))
	if len(a.notes) != 0 {
		t.Errorf("A notified on its return: %+v", a.notes)
	}
	// B does not: when the grace passes it leaves and A is told.
	eventually(t, 10*time.Second, "B dropped", func() bool { return slices.Equal(b.ConsumerIDs("grp"), []string{"A"}) })
	if n, err := a.read(); err != nil || n.Code != rocketmqtest.CodeNotifyConsumerIDs {
		t.Fatalf("A not notified of B leaving: %+v %v", n, err)
	}
}

func TestPullBatchLimits(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("big", 1))
	c := rawDial(b.Addr())
	defer c.close()
	for i := range 40 {
		rawSend(t, c, "big", 0, fmt.Sprint(i), "")
	}
	req := pullReq("big", 0, 0, flagSubscription, "*")
	req.ExtFields["maxMsgNums"] = "100"
	resp, err := c.call(req)
	if err != nil || resp.Code != 0 {
		t.Fatal(err, resp)
	}
	if n := len(decodeBodies(resp.Body)); n != 32 || resp.ExtFields["nextBeginOffset"] != "32" {
		t.Errorf("%d messages, next %s; want 32 per pull", n, resp.ExtFields["nextBeginOffset"])
	}
	req.ExtFields["maxMsgNums"] = "0" // still at least one, as the Java broker does
	if resp, _ := c.call(req); resp == nil || len(decodeBodies(resp.Body)) != 1 {
		t.Errorf("maxMsgNums 0: %+v", resp)
	}
}

// TestOutOfRangeInt32Fields checks that a Java int field out of the int32
// range gets an error response naming the field instead of being truncated
// (queueId 4294967295 would become -1: a random queue), and that malformed
// optional fields are refused rather than ignored.
func TestOutOfRangeInt32Fields(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("r", 4))
	c := rawDial(b.Addr())
	defer c.close()
	const huge = "4294967295"
	send := map[string]string{"producerGroup": "p", "topic": "r", "queueId": huge,
		"sysFlag": "0", "bornTimestamp": "1", "flag": "0", "properties": ""}
	sendV2 := map[string]string{"a": "p", "b": "r", "e": huge, "f": "0", "g": "1", "h": "0", "i": ""}
	pull := pullReq("r", 0, 0, flagSubscription, "*").ExtFields
	pull["queueId"] = huge
	pullSubVersion := pullReq("r", 0, 0, flagSubscription, "*").ExtFields
	pullSubVersion["subVersion"] = "v1"
	cases := []struct {
		name   string
		code   int16
		fields map[string]string
		want   string // in the remark
	}{
		{"send", rocketmqtest.CodeSendMessage, send, `"queueId"`},
		{"send v2", rocketmqtest.CodeSendMessageV2, sendV2, `queueId: header field "e"`},
		{"pull", rocketmqtest.CodePullMessage, pull, `"queueId"`},
		{"pull, bad subVersion", rocketmqtest.CodePullMessage, pullSubVersion, `"subVersion"`},
		{"query offset", rocketmqtest.CodeQueryConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "r", "queueId": huge}, `"queueId"`},
		{"max offset", rocketmqtest.CodeGetMaxOffset, map[string]string{"topic": "r", "queueId": huge}, `"queueId"`},
		{"create topic, bad perm", rocketmqtest.CodeUpdateAndCreateTopic, map[string]string{"topic": "n", "readQueueNums": "1", "writeQueueNums": "1", "perm": "rw"}, `"perm"`},
		{"send back, bad delayLevel", rocketmqtest.CodeConsumerSendMsgBack, map[string]string{"group": "g", "offset": "0", "delayLevel": "x"}, `"delayLevel"`},
		{"send back, bad maxReconsumeTimes", rocketmqtest.CodeConsumerSendMsgBack, map[string]string{"group": "g", "offset": "0", "maxReconsumeTimes": "many"}, `"maxReconsumeTimes"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.call(&rocketmqtest.Command{Code: tc.code, Body: []byte("x"), ExtFields: tc.fields})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != 1 || !strings.Contains(resp.Remark, tc.want) {
				t.Errorf("code %d remark %q, want SYSTEM_ERROR naming %s", resp.Code, resp.Remark, tc.want)
			}
		})
	}
	if n := len(b.Messages("r")); n != 0 {
		t.Errorf("%d messages stored", n)
	}
}

// TestConsumerGroupNames checks that heartbeats and send-backs refuse the
// same group names, those whose %RETRY% topic would pass 127 bytes, before
// creating a topic, and say which field is wrong.
func TestConsumerGroupNames(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	c := rawDial(b.Addr())
	defer c.close()
	rawSend(t, c, "r", 0, "m", "") // commit-log offset 0
	longest := strings.Repeat("g", 127-len("%RETRY%"))
	sendBack := func(fields map[string]string) *rocketmqtest.Command {
		t.Helper()
		resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeConsumerSendMsgBack, ExtFields: fields})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		want   string // in the remark
	}{
		{"no group", map[string]string{"offset": "0"}, "missing consumer group"},
		{"group too long", map[string]string{"group": longest + "g", "offset": "0"}, "too long"},
		{"no offset", map[string]string{"group": "g"}, `missing header field "offset"`},
		{"bad offset", map[string]string{"group": "g", "offset": "x"}, `header field "offset": `},
	} {
		if resp := sendBack(tc.fields); resp.Code != 1 || !strings.Contains(resp.Remark, tc.want) {
			t.Errorf("send-back, %s: code %d remark %q, want SYSTEM_ERROR with %q", tc.name, resp.Code, resp.Remark, tc.want)
		}
	}
	// Level -1: straight to the DLQ, where Messages sees it.
	if resp := sendBack(map[string]string{"group": longest, "offset": "0", "delayLevel": "-1"}); resp.Code != 0 {
		t.Errorf("send-back, longest group: code %d remark %q", resp.Code, resp.Remark)
	}
	if n := len(b.Messages("%DLQ%" + longest)); n != 1 {
		t.Errorf("%d DLQ messages for the longest group, want 1", n)
	}
	hb := `{"clientID":"c","consumerDataSet":[{"groupName":"` + longest + `g","subscriptionDataSet":[]}]}`
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Body: []byte(hb)}); err != nil || resp.Code != 1 || !strings.Contains(resp.Remark, "too long") {
		t.Errorf("heartbeat, group too long: %v %+v", err, resp)
	}
}

// TestFaultHitsLogged checks that a fault hit is logged at debug level with
// the fault and the request code, as WithLogger says.
func TestFaultHitsLogged(t *testing.T) {
	var log lockedBuffer
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	f := b.RejectSendBacks()
	c := rawDial(b.Addr())
	defer c.close()
	if resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeConsumerSendMsgBack,
		ExtFields: map[string]string{"group": "g", "offset": "0"}}); err != nil || resp.Code != 1 {
		t.Fatalf("send-back: %v %+v", err, resp)
	}
	if f.Hits() != 1 {
		t.Fatalf("%d hits", f.Hits())
	}
	if want := `msg="rocketmqtest: fault hit" fault=RejectSendBacks code=36`; !strings.Contains(log.String(), want) {
		t.Errorf("log %q lacks %q", log.String(), want)
	}
}

// lockedBuffer is a bytes.Buffer the broker's goroutines may write to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, tc := range map[string]struct {
		o    rocketmqtest.Option
		want string // in the error
	}{
		"empty topic":                {rocketmqtest.WithTopic("", 2), "WithTopic: empty topic name"},
		"topic without queues":       {rocketmqtest.WithTopic("t", 0), `WithTopic("t", 0)`},
		"no default queues":          {rocketmqtest.WithDefaultQueues(0), "WithDefaultQueues(0)"},
		"negative default queues":    {rocketmqtest.WithDefaultQueues(-3), "WithDefaultQueues(-3)"},
		"negative reconsume times":   {rocketmqtest.WithMaxReconsumeTimes(-1), "WithMaxReconsumeTimes(-1)"},
		"reconsume times past int32": {rocketmqtest.WithMaxReconsumeTimes(1 << 31), "WithMaxReconsumeTimes(2147483648)"},
		"negative lock expiry":       {rocketmqtest.WithLockExpiry(-time.Second), "WithLockExpiry(-1s)"},
		"negative delay scale":       {rocketmqtest.WithDelayScale(-time.Millisecond), "WithDelayScale(-1ms)"},
		"negative reconnect grace":   {rocketmqtest.WithReconnectGrace(-time.Second), "WithReconnectGrace(-1s)"},
	} {
		b, err := rocketmqtest.New(tc.o)
		if err == nil {
			b.Close()
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", name, err, tc.want)
		}
	}
	// Zero means off, not a mistake.
	b, err := rocketmqtest.New(rocketmqtest.WithDelayScale(0), rocketmqtest.WithReconnectGrace(0))
	if err != nil {
		t.Fatalf("zero durations: %v", err)
	}
	b.Close()
}

package rocketmqtest_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// jsonFrame builds a frame whose JSON header is given as text, for headers
// EncodeFrame cannot write: extFields values that are not strings.
func jsonFrame(header string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)+len(body)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(header))) // serialize type 0: JSON
	b = append(b, header...)
	return append(b, body...)
}

// send writes a request with extFields given as a JSON object and, unless it
// is one-way, returns the response.
func (c *rawClient) send(code int16, oneway bool, ext string, body []byte) *rocketmqtest.Command {
	c.t.Helper()
	c.opaque++
	flag := 0
	if oneway {
		flag = 2
	}
	c.write(jsonFrame(fmt.Sprintf(`{"code":%d,"language":"OTHER","version":401,"opaque":%d,"flag":%d,"extFields":%s}`,
		code, c.opaque, flag, ext), body))
	if oneway {
		return nil
	}
	resp, err := c.read()
	for err == nil && !resp.IsResponse() {
		resp, err = c.read() // NOTIFY_CONSUMER_IDS_CHANGED and the like
	}
	if err != nil {
		c.t.Fatalf("code %d, extFields %s: %v", code, ext, err)
	}
	if resp.Opaque != c.opaque {
		c.t.Fatalf("response opaque %d for request opaque %d", resp.Opaque, c.opaque)
	}
	return resp
}

// TestNumericExtFields sends every request code an independent client sent
// with numbers and booleans in extFields, which the Java broker reads as
// their text (fastjson), and checks each is understood and the connection
// stays open.
func TestNumericExtFields(t *testing.T) {
	var log lockedBuffer
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	c := dial(t, b)
	want := func(resp *rocketmqtest.Command, code int16, fields map[string]string) {
		t.Helper()
		if resp.Code != code {
			t.Fatalf("code %d (%s), want %d", resp.Code, resp.Remark, code)
		}
		for k, v := range fields {
			if resp.ExtFields[k] != v {
				t.Errorf("%s = %q, want %q (response %+v)", k, resp.ExtFields[k], v, resp)
			}
		}
	}

	t.Run("UPDATE_AND_CREATE_TOPIC", func(t *testing.T) {
		want(c.send(rocketmqtest.CodeUpdateAndCreateTopic, false,
			`{"topic":"n","defaultTopic":"TBW102","readQueueNums":3,"writeQueueNums":3,"perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false}`, nil), 0, nil)
		var route struct {
			QueueDatas []struct{ ReadQueueNums, WriteQueueNums, Perm int } `json:"queueDatas"`
		}
		resp := c.send(rocketmqtest.CodeGetRouteInfoByTopic, false, `{"topic":"n"}`, nil)
		if err := json.Unmarshal(resp.Body, &route); err != nil {
			t.Fatal(err)
		}
		if q := route.QueueDatas[0]; q.ReadQueueNums != 3 || q.WriteQueueNums != 3 || q.Perm != 6 {
			t.Errorf("route %+v", route)
		}
	})
	t.Run("SEND_MESSAGE_V2", func(t *testing.T) {
		resp := c.send(rocketmqtest.CodeSendMessageV2, false,
			`{"a":"p","b":"n","c":"TBW102","d":4,"e":0,"f":0,"g":1234567890123,"h":0,"i":"UNIQ_KEY\u0001K1\u0002","j":0,"k":false,"m":false}`,
			[]byte("m0"))
		want(resp, 0, map[string]string{"queueId": "0", "queueOffset": "0"})
		msgs := b.QueueMessages("n", 0)
		if len(msgs) != 1 || msgs[0].BornTimestamp != 1234567890123 || string(msgs[0].Body) != "m0" || msgs[0].MsgId != "K1" {
			t.Fatalf("stored %v", msgs)
		}
	})
	t.Run("PULL_MESSAGE", func(t *testing.T) {
		resp := c.send(rocketmqtest.CodePullMessage, false,
			`{"consumerGroup":"g","topic":"n","queueId":0,"queueOffset":0,"maxMsgNums":32,"sysFlag":4,"commitOffset":0,"suspendTimeoutMillis":0,"subscription":"*","subVersion":0,"expressionType":"TAG"}`, nil)
		want(resp, 0, map[string]string{"nextBeginOffset": "1", "maxOffset": "1"})
		if got := decodeBodies(resp.Body); fmt.Sprint(got) != "[m0]" {
			t.Errorf("pulled %v", got)
		}
	})
	t.Run("UPDATE_CONSUMER_OFFSET one-way", func(t *testing.T) {
		c.send(rocketmqtest.CodeUpdateConsumerOffset, true, `{"consumerGroup":"g","topic":"n","queueId":0,"commitOffset":1}`, nil)
		// Requests of a connection are handled in order: the query sees the commit.
		want(c.send(rocketmqtest.CodeQueryConsumerOffset, false,
			`{"consumerGroup":"g","topic":"n","queueId":0,"setZeroIfNotFound":false}`, nil), 0, map[string]string{"offset": "1"})
		if off := b.CommittedOffset("g", "n", 0); off != 1 {
			t.Errorf("committed %d", off)
		}
	})
	t.Run("UPDATE_CONSUMER_OFFSET", func(t *testing.T) {
		want(c.send(rocketmqtest.CodeUpdateConsumerOffset, false, `{"consumerGroup":"g","topic":"n","queueId":1,"commitOffset":0}`, nil), 0, nil)
		if off := b.CommittedOffset("g", "n", 1); off != 0 {
			t.Errorf("committed %d", off)
		}
	})
	t.Run("QUERY_CONSUMER_OFFSET", func(t *testing.T) {
		want(c.send(rocketmqtest.CodeQueryConsumerOffset, false, `{"consumerGroup":"g","topic":"n","queueId":1}`, nil),
			0, map[string]string{"offset": "0"})
	})
	t.Run("SEARCH_OFFSET_BY_TIMESTAMP", func(t *testing.T) {
		want(c.send(rocketmqtest.CodeSearchOffsetByTime, false, `{"topic":"n","queueId":0,"timestamp":0}`, nil),
			0, map[string]string{"offset": "0"})
		want(c.send(rocketmqtest.CodeSearchOffsetByTime, false, `{"topic":"n","queueId":0,"timestamp":9999999999999}`, nil),
			0, map[string]string{"offset": "1"})
	})
	t.Run("GET_MAX_OFFSET", func(t *testing.T) {
		want(c.send(rocketmqtest.CodeGetMaxOffset, false, `{"topic":"n","queueId":0}`, nil), 0, map[string]string{"offset": "1"})
	})
	t.Run("CONSUMER_SEND_MSG_BACK", func(t *testing.T) {
		m := b.QueueMessages("n", 0)[0]
		// maxReconsumeTimes 0 sends it to the DLQ: proof that the number was read.
		want(c.send(rocketmqtest.CodeConsumerSendMsgBack, false, fmt.Sprintf(
			`{"group":"g","offset":%d,"delayLevel":0,"originMsgId":%q,"originTopic":"n","unitMode":false,"maxReconsumeTimes":0}`,
			m.CommitLogOffset, m.MsgId), nil), 0, nil)
		if dlq := b.Messages("%DLQ%g"); len(dlq) != 1 || string(dlq[0].Body) != "m0" {
			t.Errorf("DLQ %v", dlq)
		}
	})
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("warnings logged:\n%s", log.String())
	}
}

// TestMalformedOneWayRequestLogged checks that a one-way request the broker
// refuses, which gets no response, is logged rather than lost silently.
func TestMalformedOneWayRequestLogged(t *testing.T) {
	var log lockedBuffer
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	c := dial(t, b)
	c.send(rocketmqtest.CodeUpdateConsumerOffset, true, `{"consumerGroup":"g","topic":"n","queueId":0,"commitOffset":1.5}`, nil)
	// A round trip after it: the one-way request has been handled.
	c.send(rocketmqtest.CodeGetMaxOffset, false, `{"topic":"n","queueId":0}`, nil)
	if off := b.CommittedOffset("g", "n", 0); off != -1 {
		t.Errorf("committed %d from a malformed commit", off)
	}
	if !strings.Contains(log.String(), `level=WARN msg="rocketmqtest: one-way request failed" code=15`) ||
		!strings.Contains(log.String(), `commitOffset`) {
		t.Errorf("no warning naming the field:\n%s", log.String())
	}
}

// TestQueryConsumerOffsetNotFound checks when QUERY_CONSUMER_OFFSET answers
// 0 and when QUERY_NOT_FOUND (22), as ConsumerManageProcessor does, and that
// a committed -1 counts as no offset rather than being answered.
func TestQueryConsumerOffsetNotFound(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("q", 2))
	c := dial(t, b)
	c.send(rocketmqtest.CodeSendMessageV2, false, `{"a":"p","b":"q","e":0,"f":0,"g":1,"h":0,"i":""}`, []byte("x"))
	c.send(rocketmqtest.CodeHeartbeat, false, `{}`, consumerHeartbeat("minus", "two"))
	commit := func(group string, queue int, off int64) {
		c.send(rocketmqtest.CodeUpdateConsumerOffset, true,
			fmt.Sprintf(`{"consumerGroup":%q,"topic":"q","queueId":%d,"commitOffset":%d}`, group, queue, off), nil)
	}
	commit("minus", 0, -1)
	commit("minus", 1, -1)
	commit("two", 0, 2)
	cases := []struct {
		name, ext string
		code      int16
		offset    string
	}{
		{"queue with a message, no commit", `{"consumerGroup":"new","topic":"q","queueId":0}`, 0, "0"},
		{"empty queue, no commit", `{"consumerGroup":"new","topic":"q","queueId":1}`, 22, ""},
		{"unknown topic", `{"consumerGroup":"new","topic":"none","queueId":0}`, 22, ""},
		{"setZeroIfNotFound false", `{"consumerGroup":"new","topic":"q","queueId":0,"setZeroIfNotFound":false}`, 22, ""},
		{"setZeroIfNotFound FALSE", `{"consumerGroup":"new","topic":"q","queueId":0,"setZeroIfNotFound":"FALSE"}`, 22, ""},
		{"setZeroIfNotFound not a boolean", `{"consumerGroup":"new","topic":"q","queueId":0,"setZeroIfNotFound":"yes"}`, 22, ""},
		{"setZeroIfNotFound TRUE", `{"consumerGroup":"new","topic":"q","queueId":0,"setZeroIfNotFound":"TRUE"}`, 0, "0"},
		{"setZeroIfNotFound null", `{"consumerGroup":"new","topic":"q","queueId":0,"setZeroIfNotFound":null}`, 0, "0"},
		{"-1 committed, queue with a message", `{"consumerGroup":"minus","topic":"q","queueId":0}`, 0, "0"},
		{"-1 committed, empty queue", `{"consumerGroup":"minus","topic":"q","queueId":1}`, 22, ""},
		{"committed", `{"consumerGroup":"two","topic":"q","queueId":0,"setZeroIfNotFound":false}`, 0, "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.send(rocketmqtest.CodeQueryConsumerOffset, false, tc.ext, nil)
			if resp.Code != tc.code || resp.ExtFields["offset"] != tc.offset {
				t.Errorf("code %d offset %q (%s), want %d %q", resp.Code, resp.ExtFields["offset"], resp.Remark, tc.code, tc.offset)
			}
		})
	}
	// The -1 is stored as given, as the Java broker stores it.
	if offs := b.CommittedOffsets("minus", "q"); fmt.Sprint(offs) != "map[0:-1 1:-1]" {
		t.Errorf("committed %v", offs)
	}
}

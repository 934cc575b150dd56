package rocketmqtest_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// rawClient speaks the remoting protocol directly.
type rawClient struct {
	t     testing.TB
	nc    net.Conn
	r     *bufio.Reader
	notes []*rocketmqtest.Command // broker-to-client requests read by roundTrip

	opaque int32 // the last one send used
}

func dial(t testing.TB, b *rocketmqtest.Broker) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one frame, or returns the read error.
func (c *rawClient) read() (*rocketmqtest.Command, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return rocketmqtest.ReadFrame(c.r)
}

func (c *rawClient) roundTrip(req *rocketmqtest.Command) *rocketmqtest.Command {
	c.t.Helper()
	c.write(rocketmqtest.EncodeFrame(req))
	resp, err := c.read()
	for err == nil && !resp.IsResponse() {
		c.notes = append(c.notes, resp)
		resp, err = c.read()
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Opaque != req.Opaque || !resp.IsResponse() {
		c.t.Fatalf("response opaque %d flag %d for request opaque %d", resp.Opaque, resp.Flag, req.Opaque)
	}
	return resp
}

func TestProtocolSerializations(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("t1", 3))
	for _, ser := range []rocketmqtest.Serialization{rocketmqtest.JSON, rocketmqtest.Binary} {
		c := dial(t, b)
		resp := c.roundTrip(&rocketmqtest.Command{
			Code: rocketmqtest.CodeGetRouteInfoByTopic, Language: "GO", Opaque: 7,
			ExtFields: map[string]string{"topic": "t1"}, Serialization: ser,
		})
		// JSON whatever the request's, as the Java broker answers.
		if resp.Serialization != rocketmqtest.JSON || resp.Code != 0 {
			t.Fatalf("serialization %d: response %+v", ser, resp)
		}
		var route struct {
			QueueDatas []struct {
				ReadQueueNums, WriteQueueNums, Perm int
			} `json:"queueDatas"`
			BrokerDatas []struct {
				BrokerAddrs map[string]string `json:"brokerAddrs"`
			} `json:"brokerDatas"`
		}
		if err := json.Unmarshal(resp.Body, &route); err != nil {
			t.Fatal(err)
		}
		if route.QueueDatas[0].ReadQueueNums != 3 || route.QueueDatas[0].Perm != 6 || route.BrokerDatas[0].BrokerAddrs["0"] != b.Addr() {
			t.Errorf("route %+v", route)
		}
	}
}

func TestProtocolUnknownCode(t *testing.T) {
	b := rocketmqtest.NewBroker(t)
	c := dial(t, b)
	for i, flag := range []int32{0, 2} { // request, one-way request
		resp := c.roundTrip(&rocketmqtest.Command{Code: 9999, Opaque: int32(i + 1), Flag: flag})
		if resp.Code != 3 {
			t.Errorf("flag %d: code %d, want 3 (REQUEST_CODE_NOT_SUPPORTED)", flag, resp.Code)
		}
	}
	// The connection still works.
	resp := c.roundTrip(&rocketmqtest.Command{Code: rocketmqtest.CodeGetMaxOffset, Opaque: 9,
		ExtFields: map[string]string{"topic": "none", "queueId": "0"}})
	if resp.Code != 0 || resp.ExtFields["offset"] != "0" {
		t.Errorf("GET_MAX_OFFSET: %+v", resp)
	}
}

func TestProtocolMalformedFrames(t *testing.T) {
	var log lockedBuffer
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	valid := rocketmqtest.EncodeFrame(&rocketmqtest.Command{Code: rocketmqtest.CodeGetMinOffset, Opaque: 1,
		ExtFields: map[string]string{"topic": "x", "queueId": "0"}})
	cases := map[string][]byte{
		"absurd length":           {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"negative length":         {0xff, 0xff, 0xff, 0xff},
		"too short":               {0, 0, 0, 2, 0, 0},
		"header longer than data": {0, 0, 0, 8, 0, 0, 0, 200, '{', '}', ' ', ' '},
		"bad json":                append([]byte{0, 0, 0, 6, 0, 0, 0, 2}, '{', '['),
		"unknown serialization":   {0, 0, 0, 6, 5, 0, 0, 2, '{', '}'},
		"truncated binary header": {0, 0, 0, 8, 1, 0, 0, 4, 0, 11, 9, 1},
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, b)
			c.write(frame)
			if _, err := c.read(); !errors.Is(err, io.EOF) {
				t.Fatalf("read after malformed frame: %v, want EOF (connection closed)", err)
			}
		})
	}
	t.Run("truncated frame then close", func(t *testing.T) {
		c := dial(t, b)
		c.write(valid[:len(valid)-3])
		_ = c.nc.(*net.TCPConn).CloseWrite()
		if _, err := c.read(); !errors.Is(err, io.EOF) {
			t.Fatalf("read: %v, want EOF", err)
		}
	})
	// The broker still serves new connections.
	c := dial(t, b)
	c.write(valid)
	if resp, err := c.read(); err != nil || resp.Code != 0 {
		t.Fatalf("after malformed frames: %v %+v", err, resp)
	}
	// Malformed frames are warnings; a frame cut short by the client is a
	// read error.
	if n := strings.Count(log.String(), `level=WARN msg="rocketmqtest: closing connection"`); n != len(cases) {
		t.Errorf("%d warnings for %d malformed frames:\n%s", n, len(cases), log.String())
	}
	if n := strings.Count(log.String(), `level=INFO msg="rocketmqtest: read error, closing connection"`); n != 1 {
		t.Errorf("%d read errors for 1 truncated frame:\n%s", n, log.String())
	}
}

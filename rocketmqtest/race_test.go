package rocketmqtest_test

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// TestConcurrentRawClients drives the broker from many raw protocol
// connections at once — sends in both serializations, long-polling pulls
// with offset commits, heartbeats, send-backs, locks — while the test calls
// the admin, fault and introspection API, closes every connection and
// restarts the broker. It runs under -race, where the tests driving
// rocketmq-client-go cannot.
func TestConcurrentRawClients(t *testing.T) {
	b := rocketmqtest.NewBroker(t, rocketmqtest.WithTopic("stress", 4), rocketmqtest.WithDelayScale(time.Millisecond))
	const producers, perProducer = 4, 50

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	stop := make(chan struct{})
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ser := rocketmqtest.Serialization(p % 2)
			var c *rawConn
			for i := 0; i < perProducer; {
				if c == nil {
					c = rawDial(b.Addr())
				}
				body := fmt.Sprintf("p%d-%d", p, i)
				resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Serialization: ser, Body: []byte(body),
					ExtFields: map[string]string{"producerGroup": "pg", "topic": "stress", "queueId": strconv.Itoa(i % 4),
						"sysFlag": "0", "bornTimestamp": "1", "flag": "0", "properties": "UNIQ_KEY\x01" + body + "\x02TAGS\x01t\x02"}})
				if err != nil || resp.Code != 0 {
					c.close()
					c = nil
					continue // connection closed by the test, or paused past the timeout: resend
				}
				i++
			}
			if c != nil {
				c.close()
			}
		}()
	}
	for q := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				c      *rawConn
				offset int64
				pulled int // messages pulled by this goroutine
			)
			for {
				select {
				case <-stop:
					if c != nil {
						c.close()
					}
					return
				default:
				}
				if c == nil {
					c = rawDial(b.Addr())
					hb := `{"clientID":"puller-` + strconv.Itoa(q) + `","producerDataSet":[],"consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{"topic":"stress","subString":"t","subVersion":1,"expressionType":"TAG"}]}]}`
					if _, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeHeartbeat, Body: []byte(hb)}); err != nil {
						c.close()
						c = nil
						continue
					}
				}
				resp, err := c.call(&rocketmqtest.Command{Code: rocketmqtest.CodePullMessage,
					ExtFields: map[string]string{"consumerGroup": "cg", "topic": "stress", "queueId": strconv.Itoa(q),
						"queueOffset": strconv.FormatInt(offset, 10), "maxMsgNums": "8", "sysFlag": "3",
						"commitOffset": strconv.FormatInt(offset, 10), "suspendTimeoutMillis": "200", "expressionType": "TAG"}})
				if err != nil {
					c.close()
					c = nil
					continue
				}
				if next, err := strconv.ParseInt(resp.ExtFields["nextBeginOffset"], 10, 64); err == nil {
					offset = next
				}
				if resp.Code == 0 {
					for _, m := range decodeBodies(resp.Body) {
						mu.Lock()
						seen[m] = true
						mu.Unlock()
						// Send one in ten back, and lock the queue, to run those paths too.
						if pulled++; pulled%10 == 0 {
							_, _ = c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeConsumerSendMsgBack,
								ExtFields: map[string]string{"group": "cg", "offset": "0", "delayLevel": "1", "originMsgId": "", "originTopic": "stress", "maxReconsumeTimes": "3"}})
						}
					}
					_, _ = c.call(&rocketmqtest.Command{Code: rocketmqtest.CodeLockBatchMQ,
						Body: []byte(`{"consumerGroup":"cg","clientId":"puller-` + strconv.Itoa(q) + `","mqSet":[{"topic":"stress","brokerName":"broker-a","queueId":` + strconv.Itoa(q) + `}]}`)})
				}
			}
		}()
	}

	// Meanwhile, the test side of the API.
	dup := b.DuplicateSends()
	delay := b.DelayResponses(rocketmqtest.CodePullMessage, time.Millisecond)
	b.ControlKey(rocketmqtest.CodeGetMaxOffset, func(*rocketmqtest.Command) (*rocketmqtest.Command, error, bool) { return nil, nil, false })
	for i := range 20 {
		_ = b.Messages("stress")
		_ = b.CommittedOffset("cg", "stress", i%4)
		_ = b.Clients()
		_ = b.ConsumerIDs("cg")
		switch i {
		case 5:
			dup.Remove()
			b.CloseClientConnections()
		case 10:
			b.Pause()
			time.Sleep(5 * time.Millisecond)
			b.Resume()
		case 15:
			if err := b.Restart(); err != nil {
				t.Error(err)
			}
			delay.Remove()
		}
		time.Sleep(5 * time.Millisecond)
	}
	eventually(t, 20*time.Second, "every message pulled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for p := range producers {
			for i := range perProducer {
				if !seen[fmt.Sprintf("p%d-%d", p, i)] {
					return false
				}
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	if n := len(b.Messages("stress")); n < producers*perProducer {
		t.Errorf("%d messages stored, want at least %d", n, producers*perProducer)
	}
}

// rawConn is a synchronous remoting client: one request at a time.
type rawConn struct {
	nc     net.Conn
	opaque int32
}

func rawDial(addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return &rawConn{} // the broker is restarting: calls fail, the caller redials
	}
	return &rawConn{nc: nc}
}

func (c *rawConn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
	}
}

func (c *rawConn) call(req *rocketmqtest.Command) (*rocketmqtest.Command, error) {
	if c.nc == nil {
		time.Sleep(time.Millisecond)
		return nil, errors.New("not connected")
	}
	c.opaque++
	req.Opaque = c.opaque
	_ = c.nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.nc.Write(rocketmqtest.EncodeFrame(req)); err != nil {
		return nil, err
	}
	for {
		resp, err := rocketmqtest.ReadFrame(c.nc)
		if err != nil {
			return nil, err
		}
		if resp.IsResponse() && resp.Opaque == req.Opaque {
			return resp, nil
		}
		// A broker-to-client request (NOTIFY_CONSUMER_IDS_CHANGED): ignore.
	}
}

// decodeBodies extracts the bodies of the messages in a pull response body,
// decoded as rocketmq-client-go does.
func decodeBodies(b []byte) []string {
	var out []string
	for _, m := range primitive.DecodeMessage(b) {
		out = append(out, string(m.Body))
	}
	return out
}

package rocketmqtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// codeResetConsumerClientOffset is RESET_CONSUMER_CLIENT_OFFSET, sent by the
// broker to the clients of a group whose offsets an admin reset.
const codeResetConsumerClientOffset int16 = 220

// CreateTopic creates a topic with the given number of read and write queues,
// or changes the queue counts of an existing one (queues are only added).
func (b *Broker) CreateTopic(topic string, queues int) {
	queues = max(queues, 1)
	b.do(func(s *state) { s.createTopic(topic, queues, queues, permRead|permWrite) })
}

// RewindOffsets sets the group's committed offsets of every queue of the
// topic back to the queue's min offset (0), so the group consumes everything
// again. Running consumers of the group are told with
// RESET_CONSUMER_CLIENT_OFFSET, as mqadmin resetOffsetByTime does;
// rocketmq-client-go v2.1.2 then pauses about 10 s before it pulls from the
// new offsets. Consumers started later read the new offsets at once.
func (b *Broker) RewindOffsets(group, topic string) {
	b.do(func(s *state) {
		t := s.topics[topic]
		if t == nil {
			return
		}
		table := map[int32]int64{}
		for i := range t.queues {
			table[int32(i)] = 0
		}
		s.resetOffsets(group, topic, table)
	})
}

// SetCommittedOffset sets one queue's committed offset for the group and tells
// running consumers of the group, like RewindOffsets.
func (b *Broker) SetCommittedOffset(group, topic string, queueID int, offset int64) {
	b.do(func(s *state) { s.resetOffsets(group, topic, map[int32]int64{int32(queueID): offset}) })
}

func (s *state) resetOffsets(group, topic string, table map[int32]int64) {
	ids := slices.Sorted(maps.Keys(table))
	// The body is a Gson-style map as a list of [key, value] pairs, the
	// layout rocketmq-client-go's ResetOffsetBody.Decode parses.
	var body bytes.Buffer
	body.WriteString(`{"offsetTable":[`)
	for i, id := range ids {
		s.setOffset(offsetKey{group, topic, id}, table[id])
		if i > 0 {
			body.WriteByte(',')
		}
		mq, _ := json.Marshal(messageQueue{Topic: topic, BrokerName: s.cfg.brokerName, QueueID: id})
		fmt.Fprintf(&body, "[%s,%d]", mq, table[id])
	}
	body.WriteString(`]}`)
	g := s.groups[group]
	if g == nil {
		return
	}
	for c := range g.clients {
		s.sendToClient(c, codeResetConsumerClientOffset, map[string]string{
			"topic":     topic,
			"group":     group,
			"timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
			"isForce":   "true",
		}, body.Bytes())
	}
}

// CommittedOffset returns the group's committed offset of a queue, or -1 when
// the group has committed none.
func (b *Broker) CommittedOffset(group, topic string, queueID int) int64 {
	off := int64(-1)
	b.do(func(s *state) {
		if v, ok := s.offsets[offsetKey{group, topic, int32(queueID)}]; ok {
			off = v
		}
	})
	return off
}

// MaxOffset returns a queue's max offset: how many messages it holds.
func (b *Broker) MaxOffset(topic string, queueID int) int64 {
	var off int64
	b.do(func(s *state) {
		if q := s.queue(topic, int32(queueID)); q != nil {
			off = int64(len(q.msgs))
		}
	})
	return off
}

// Messages returns the messages stored in a topic, all queues, in store order,
// decoded by rocketmq-client-go's primitive.DecodeMessage from the very bytes
// a pull returns. Retry and DLQ topics are "%RETRY%group" and "%DLQ%group";
// delayed messages wait in "SCHEDULE_TOPIC_XXXX".
func (b *Broker) Messages(topic string) []*primitive.MessageExt {
	return b.messages(topic, -1)
}

// QueueMessages returns the messages stored in one queue of a topic, in
// queue-offset order, decoded as by Messages.
func (b *Broker) QueueMessages(topic string, queueID int) []*primitive.MessageExt {
	return b.messages(topic, queueID)
}

func (b *Broker) messages(topic string, queueID int) []*primitive.MessageExt {
	var stored []*message
	b.do(func(s *state) {
		t := s.topics[topic]
		if t == nil {
			return
		}
		for i, q := range t.queues {
			if queueID < 0 || i == queueID {
				stored = append(stored, q.msgs...)
			}
		}
	})
	sort.Slice(stored, func(i, j int) bool { return stored[i].commitLogOffset < stored[j].commitLogOffset })
	var buf []byte
	for _, m := range stored {
		buf = append(buf, m.enc...)
	}
	msgs := primitive.DecodeMessage(buf)
	for _, m := range msgs {
		m.Queue = &primitive.MessageQueue{Topic: m.Topic, BrokerName: b.cfg.brokerName, QueueId: m.Queue.QueueId}
	}
	return msgs
}

// ClientInfo describes an open client connection and what the client declared
// in its heartbeats on it. rocketmq-client-go sends its first heartbeat a
// second after it starts, or at once for a push consumer.
type ClientInfo struct {
	Addr           string // the client's address as the broker sees it
	ClientID       string // "" before the first heartbeat
	ConsumerGroups []string
	ProducerGroups []string
}

// Clients lists the open client connections, sorted by client id then
// address.
func (b *Broker) Clients() []ClientInfo {
	out := []ClientInfo{}
	b.do(func(s *state) {
		byConn := map[*conn]*ClientInfo{}
		for c := range s.conns {
			byConn[c] = &ClientInfo{Addr: c.remote.String()}
		}
		for name, g := range s.groups {
			for c, gc := range g.clients {
				if ci := byConn[c]; ci != nil {
					ci.ClientID = gc.clientID
					ci.ConsumerGroups = append(ci.ConsumerGroups, name)
				}
			}
		}
		for name, m := range s.producerClients {
			for c, id := range m {
				if ci := byConn[c]; ci != nil {
					ci.ClientID = id
					ci.ProducerGroups = append(ci.ProducerGroups, name)
				}
			}
		}
		for _, ci := range byConn {
			slices.Sort(ci.ConsumerGroups)
			slices.Sort(ci.ProducerGroups)
			out = append(out, *ci)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].ClientID != out[j].ClientID {
			return out[i].ClientID < out[j].ClientID
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// ConsumerIDs returns the client ids of a consumer group's members, as
// GET_CONSUMER_LIST_BY_GROUP answers them: connected consumers, and those
// whose connection the broker closed within the reconnect grace.
func (b *Broker) ConsumerIDs(group string) []string {
	var ids []string
	b.do(func(s *state) {
		if g := s.groups[group]; g != nil {
			ids = g.clientIDs()
		}
	})
	return ids
}

// Pause stops the broker from handling requests and firing timers (long-poll
// timeouts, delayed deliveries): requests queue up unanswered, as with a hung
// broker, until Resume.
func (b *Broker) Pause() { b.do(func(s *state) { s.paused = true }) }

// Resume handles the requests queued while paused, in arrival order.
func (b *Broker) Resume() {
	b.do(func(s *state) {
		s.paused = false
		reqs := s.pausedRequests
		s.pausedRequests = nil
		for _, in := range reqs {
			s.handle(in)
		}
		s.fireTimers(time.Now())
	})
}

// CloseClientConnections closes every client connection, like
// httptest.Server.CloseClientConnections. Clients reconnect on their next
// request; consumers stay members of their groups meanwhile (see
// WithReconnectGrace). Pulls held for long polling are answered SERVICE_NOT_AVAILABLE
// first, so rocketmq-client-go consumers pull again 3 s later on a new
// connection rather than waiting for their 30 s pull timeout; a request the
// client writes while the connection closes is lost and times out.
func (b *Broker) CloseClientConnections() {
	b.do(func(s *state) { s.closeConns() })
}

func (s *state) closeConns() {
	s.flushHeld()
	for c := range s.conns {
		s.sendAway(c)
		c.closeAfterWrites()
		s.connClosed(c)
	}
}

// Restart simulates a broker restart on the same address: the listener and
// every connection are closed, in-memory state a real broker loses (queue
// locks, held pulls, connected clients) is dropped, and the broker listens
// again. Messages, topics, committed offsets, pending delayed messages,
// subscriptions and installed faults are kept.
func (b *Broker) Restart() error {
	b.mu.Lock()
	addr := b.addr
	_ = b.ln.Close()
	b.mu.Unlock()
	if !b.do(func(s *state) {
		s.closeConns()
		clear(s.locks)
	}) {
		return errors.New("rocketmqtest: broker is closed")
	}
	var (
		ln  net.Listener
		err error
	)
	// The old listener's port can take a moment to be free again.
	for range 50 {
		ln, err = net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("rocketmqtest: restart: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		_ = ln.Close()
		return errors.New("rocketmqtest: broker is closed")
	}
	b.ln = ln
	b.wg.Add(1)
	go b.acceptLoop(ln)
	return nil
}

// LockOwner returns the client id holding a queue's orderly-consumption lock
// for the group, or "" when it is free or expired.
func (b *Broker) LockOwner(group, topic string, queueID int) string {
	var owner string
	b.do(func(s *state) {
		if l := s.locks[group][queueKey{topic, int32(queueID)}]; l != nil && time.Since(l.renewed) <= s.cfg.lockExpiry {
			owner = l.clientID
		}
	})
	return owner
}

// PausedRequests returns the codes of the requests waiting for Resume, in
// arrival order.
func (b *Broker) PausedRequests() []int16 {
	var codes []int16
	b.do(func(s *state) {
		for _, in := range s.pausedRequests {
			if !in.eof {
				codes = append(codes, in.cmd.Code)
			}
		}
	})
	return codes
}

// CommittedOffsets returns the group's committed offsets of the topic's
// queues, by queue id; queues without one are left out.
func (b *Broker) CommittedOffsets(group, topic string) map[int]int64 {
	out := map[int]int64{}
	b.do(func(s *state) {
		for k, off := range s.offsets {
			if k.group == group && k.topic == topic {
				out[int(k.queueID)] = off
			}
		}
	})
	return out
}

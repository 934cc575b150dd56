package rocketmqtest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// state is everything the run loop owns. Only the run loop touches it.
type state struct {
	b   *Broker
	cfg *config

	conns map[*conn]bool

	topics          map[string]*topic
	commitLog       map[int64]*message // by commit-log offset, for send-back
	nextCommitLog   int64
	storeHost       hostPort
	uniqPrefix      []byte    // of generated UNIQ_KEYs: IPv4, pid, random
	uniqStart       time.Time // generated UNIQ_KEYs count milliseconds from it
	uniqSeq         uint16
	offsets         map[offsetKey]int64
	groups          map[string]*group
	locks           map[string]map[queueKey]*queueLock // group -> queue -> lock
	held            map[queueKey][]*heldPull
	timers          timerHeap
	timerSeq        uint64
	paused          bool
	pausedRequests  []*inbound
	controls        []*control
	faults          []*fault
	producerClients map[string]map[*conn]string // producer group -> conn -> client id
	opaque          int32                       // of broker-to-client requests
	log             *os.File                    // WithDataDir's log, or nil
	replaying       bool                        // replaying the log: do not record

	// knownGroups is the Java broker's subscription-group table: a group
	// is added at its first heartbeat, pull or send-back and kept, across
	// restarts too; an offset commit for a group not in it is refused.
	knownGroups map[string]bool
}

type offsetKey struct {
	group, topic string
	queueID      int32
}

type queueKey struct {
	topic   string
	queueID int32
}

func newState(b *Broker) (*state, error) {
	s := &state{
		b:               b,
		cfg:             &b.cfg,
		conns:           map[*conn]bool{},
		topics:          map[string]*topic{},
		commitLog:       map[int64]*message{},
		offsets:         map[offsetKey]int64{},
		groups:          map[string]*group{},
		knownGroups:     map[string]bool{},
		locks:           map[string]map[queueKey]*queueLock{},
		held:            map[queueKey][]*heldPull{},
		producerClients: map[string]map[*conn]string{},
	}
	s.storeHost = hostPortOf(b.ln.Addr())
	ip := s.storeHost.ip.To4()
	if ip == nil {
		ip = make(net.IP, 4) // an IPv6 listener: Java would write 16 bytes, the key's uniqueness is elsewhere
	}
	s.uniqPrefix = append(binary.BigEndian.AppendUint16(slices.Clone(ip), uint16(os.Getpid())), make([]byte, 4)...)
	_, _ = rand.Read(s.uniqPrefix[6:])
	s.uniqStart = time.Now()
	s.createTopic(defaultTopic, 8, 8, permRead|permWrite|permInherit)
	if b.cfg.dataDir != "" {
		s.replaying = true
		err := s.openLog(b.cfg.dataDir)
		s.replaying = false
		if err != nil {
			return nil, err
		}
	}
	for name, n := range b.cfg.topics {
		s.createTopic(name, n, n, permRead|permWrite)
	}
	return s, nil
}

// shutdown runs on the run loop as it exits.
func (s *state) shutdown() {
	for c := range s.conns {
		c.close()
	}
	if s.log != nil {
		_ = s.log.Close()
	}
}

func (s *state) createTopic(name string, read, write, perm int) *topic {
	t := s.topics[name]
	if t == nil {
		t = &topic{name: name}
		s.topics[name] = t
	}
	t.readQueues, t.writeQueues, t.perm = read, write, perm
	t.ensureQueues()
	s.recordTopic(t)
	return t
}

// topic returns a topic, creating it on first use when auto-creation is on.
// Retry topics are created with 1 queue and DLQ topics with 1 write-only
// queue, as the Java broker creates them.
func (s *state) topic(name string, autoCreate bool) *topic {
	if t := s.topics[name]; t != nil {
		return t
	}
	switch {
	case strings.HasPrefix(name, retryTopicPrefix):
		return s.createTopic(name, 1, 1, permRead|permWrite)
	case strings.HasPrefix(name, dlqTopicPrefix):
		return s.createTopic(name, 1, 1, permRead|permWrite) // readable since 5.x
	case name == scheduleTopic:
		n := len(s.cfg.delayLevels)
		return s.createTopic(name, n, n, permRead|permWrite)
	case autoCreate && s.cfg.autoCreateTopics:
		return s.createTopic(name, s.cfg.defaultQueues, s.cfg.defaultQueues, permRead|permWrite)
	}
	return nil
}

func (s *state) queue(topicName string, queueID int32) *queue {
	t := s.topics[topicName]
	if t == nil || queueID < 0 || int(queueID) >= len(t.queues) {
		return nil
	}
	return t.queues[queueID]
}

// newUniqKey returns a fresh UNIQ_KEY in MessageClientIDSetter's layout:
// IPv4, pid, a random number per broker (the class loader's hash in Java),
// milliseconds since the broker started, a counter; upper-case hex.
func (s *state) newUniqKey() string {
	s.uniqSeq++
	b := binary.BigEndian.AppendUint32(slices.Clip(s.uniqPrefix), uint32(time.Since(s.uniqStart).Milliseconds()))
	return strings.ToUpper(hex.EncodeToString(binary.BigEndian.AppendUint16(b, s.uniqSeq)))
}

// put appends a message to its queue, or to the schedule topic when it carries
// a delay level. It returns the stored message.
func (s *state) put(m *message) *message {
	now := time.Now()
	if lvl := m.delayLevel(); lvl > 0 && m.sysFlag&sysFlagTransactionMask == 0 {
		// CommitLog.putMessage: park delayed messages in SCHEDULE_TOPIC_XXXX,
		// queue level-1, remembering the real topic and queue.
		lvl = min(lvl, len(s.cfg.delayLevels))
		props := parseProperties(m.props)
		props[propDelay] = strconv.Itoa(lvl)
		props[propRealTopic] = m.topic
		props[propRealQueueID] = strconv.Itoa(int(m.queueID))
		m.props = formatProperties(props)
		m.topic = scheduleTopic
		m.queueID = int32(lvl - 1)
		s.topic(scheduleTopic, false)
		stored := s.append(m, now)
		s.after(s.delay(lvl), func() { s.deliverScheduled(stored) })
		return stored
	}
	return s.append(m, now)
}

func (s *state) delay(level int) time.Duration {
	d := s.cfg.delayLevels[level-1]
	return time.Duration(float64(d) / float64(time.Second) * float64(s.cfg.delayScale))
}

// deliverScheduled is ScheduleMessageService.messageTimeup: the message goes
// to its real topic and queue with the properties it was scheduled with
// (DELAY, REAL_TOPIC, REAL_QID and WAIT unchanged), as 5.x stores it.
func (s *state) deliverScheduled(sm *message) {
	s.record('S', binary.BigEndian.AppendUint64(nil, uint64(sm.commitLogOffset)))
	props := parseProperties(sm.props)
	realTopic := props[propRealTopic]
	qid, _ := strconv.Atoi(props[propRealQueueID])
	m := &message{
		topic:          realTopic,
		queueID:        int32(qid),
		flag:           sm.flag,
		sysFlag:        sm.sysFlag &^ (sysFlagBornHostV6 | sysFlagStoreHostV6),
		body:           sm.body,
		props:          formatProperties(props),
		bornTimestamp:  sm.bornTimestamp,
		bornHost:       sm.bornHost,
		reconsumeTimes: sm.reconsumeTimes,
	}
	t := s.topic(realTopic, true)
	if t == nil || qid >= len(t.queues) {
		s.cfg.logger.Warn("rocketmqtest: dropping scheduled message for a missing queue", "topic", realTopic, "queue", qid)
		return
	}
	s.append(m, time.Now())
}

// append assigns offsets and store fields, encodes and stores the message and
// wakes long-polling pulls waiting on its queue.
func (s *state) append(m *message, now time.Time) *message {
	q := s.queue(m.topic, m.queueID)
	m.storeTimestamp = now.UnixMilli()
	m.storeHost = s.storeHost
	m.queueOffset = int64(len(q.msgs))
	m.commitLogOffset = s.nextCommitLog
	m.setTags()
	m.encode()
	s.nextCommitLog += int64(len(m.enc))
	q.msgs = append(q.msgs, m)
	s.commitLog[m.commitLogOffset] = m
	s.record('M', m.enc)
	s.wakeHeld(queueKey{m.topic, m.queueID}, m)
	return m
}

// handle dispatches one request, applying controls and faults first.
func (s *state) handle(in *inbound) {
	if s.paused {
		s.pausedRequests = append(s.pausedRequests, in)
		return
	}
	if in.eof {
		s.connClosed(in.c)
		return
	}
	if !s.conns[in.c] {
		return // read before its connection was closed by the broker
	}
	if s.cfg.debug {
		s.cfg.logger.Debug("rocketmqtest: request", "code", in.cmd.Code, "remote", in.c.remote.String(), "fields", in.cmd.ExtFields)
	}
	if s.runControls(in) {
		return
	}
	h := handlers[in.cmd.Code]
	if h == nil {
		// NettyRemotingAbstract answers unknown codes even for one-way requests.
		s.write(in, &Command{
			Code:   codeRequestNotSupported,
			Remark: fmt.Sprintf(" request type %d not supported", in.cmd.Code),
		})
		return
	}
	if resp := h(s, in); resp != nil {
		s.reply(in, resp)
	}
}

// reply sends a response unless the request was one-way. A one-way request
// that failed is logged instead, since its sender never learns of it (an
// UPDATE_CONSUMER_OFFSET with a malformed field would otherwise vanish).
func (s *state) reply(in *inbound, resp *Command) {
	if !in.cmd.Oneway() {
		s.write(in, resp)
		return
	}
	if resp.Code != codeSuccess {
		s.cfg.logger.Warn("rocketmqtest: one-way request failed", "code", in.cmd.Code,
			"remote", in.c.remote.String(), "response", resp.Code, "remark", resp.Remark)
	}
}

func (s *state) write(in *inbound, resp *Command) {
	s.writeBody(in, resp, nil)
}

// writeBody sends a response whose body is given in parts.
func (s *state) writeBody(in *inbound, resp *Command, body [][]byte) {
	if s.fault(faultDropResponse, in.cmd.Code) != nil {
		return
	}
	resp.Opaque = in.cmd.Opaque
	resp.Flag |= flagResponse
	resp.Version = brokerVersion
	// The Java broker writes every command it creates in its configured
	// serialization, JSON by default, whatever the request's.
	resp.Serialization = JSON
	if resp.Body != nil {
		body = append([][]byte{resp.Body}, body...)
		resp.Body = nil
	}
	f := outFrame{cmd: resp, body: body}
	if d := s.fault(faultDelayResponse, in.cmd.Code); d != nil && d.d > 0 {
		c := in.c
		s.after(d.d, func() { c.send(f) })
		return
	}
	in.c.send(f)
}

// connClosed forgets a connection: its clients leave their groups.
func (s *state) connClosed(c *conn) {
	if !s.conns[c] {
		return
	}
	delete(s.conns, c)
	for name, g := range s.groups {
		if g.removeConn(c) {
			s.notifyGroup(name)
		}
	}
	for _, m := range s.producerClients {
		delete(m, c)
	}
	for k, hs := range s.held {
		kept := hs[:0]
		for _, h := range hs {
			if h.in.c != c {
				kept = append(kept, h)
			}
		}
		s.held[k] = kept
	}
}

// respond builds a response command.
func respond(code int16, remark string) *Command {
	return &Command{Code: code, Remark: remark}
}

func success() *Command { return &Command{Code: codeSuccess} }

// setOffset stores a committed offset. rocketmq-client-go commits with every
// pull, mostly the same offset again: only changes go to the data log.
func (s *state) setOffset(k offsetKey, off int64) {
	if old, ok := s.offsets[k]; ok && old == off {
		return
	}
	s.offsets[k] = off
	s.recordOffset(k, off)
}

package rocketmqtest

import (
	"fmt"
	"strconv"
	"time"
)

// PULL_MESSAGE (11), as PullMessageProcessor with DefaultMessageStore.getMessage.
//
// Implemented: the subscription from the request (FLAG_SUBSCRIPTION) or from
// the group's heartbeat, with SUBSCRIPTION_NOT_EXIST / SUBSCRIPTION_NOT_LATEST;
// TAG filtering by tags hash code ("*", "a || b"); up to maxMsgNums messages,
// at most 32 and 256 KiB per response (at least one), scanning at most
// max(800, maxMsgNums) queue entries; the status mapping FOUND→SUCCESS, NO_MATCHED_MESSAGE→
// PULL_RETRY_IMMEDIATELY, OFFSET_OVERFLOW_ONE→PULL_NOT_FOUND, empty queue→
// PULL_NOT_FOUND (offset 0) or PULL_OFFSET_MOVED, offset too small or too big
// → PULL_OFFSET_MOVED with the corrected nextBeginOffset; the response fields
// nextBeginOffset, minOffset, maxOffset and suggestWhichBrokerId (always 0,
// the master); long polling (FLAG_SUSPEND): a PULL_NOT_FOUND is held until a
// matching message arrives in the queue or suspendTimeoutMillis passes, then
// re-run; the commit offset carried by the pull (FLAG_COMMIT_OFFSET) is
// stored, as the master broker does.
//
// Not implemented: SQL92 filtering (refused with SYSTEM_ERROR, as a broker
// without enablePropertyFilter does), class filters, slave suggestions,
// broadcasting checks.

func init() { handlers[CodePullMessage] = handlePullMessage }

// PullSysFlag bits.
const (
	pullFlagCommitOffset = 1 << 0
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2
	pullFlagClassFilter  = 1 << 3
)

const (
	maxPullBytes     = 256 << 10 // maxTransferBytesOnMessageInMemory
	maxPullCount     = 32        // maxTransferCountOnMessageInMemory
	minFilterEntries = 800       // 16000 bytes of 20-byte consume-queue entries
)

type pullRequest struct {
	group          string
	topic          string
	queueID        int32
	offset         int64
	maxMsgs        int
	sysFlag        int32
	commitOffset   int64
	suspend        time.Duration
	subscription   string
	subVersion     int64
	expressionType string
}

func parsePullRequest(c *Command) (*pullRequest, error) {
	r := &pullRequest{
		group:          c.ext("consumerGroup"),
		topic:          c.ext("topic"),
		subscription:   c.ext("subscription"),
		expressionType: c.ext("expressionType"),
	}
	var (
		maxMsgs int32
		suspend int64
		err     error
	)
	// In a fixed order, so that a request with several bad fields always
	// reports the same one.
	if r.queueID, err = c.extInt32("queueId"); err != nil {
		return nil, err
	}
	if r.offset, err = c.extInt("queueOffset"); err != nil {
		return nil, err
	}
	if maxMsgs, err = c.extInt32("maxMsgNums"); err != nil {
		return nil, err
	}
	if r.sysFlag, err = c.extInt32("sysFlag"); err != nil {
		return nil, err
	}
	if r.commitOffset, err = c.extInt("commitOffset"); err != nil {
		return nil, err
	}
	if suspend, err = c.extInt("suspendTimeoutMillis"); err != nil {
		return nil, err
	}
	if r.subVersion, err = c.extIntOr("subVersion", 0); err != nil {
		return nil, err
	}
	if r.group == "" || r.topic == "" {
		return nil, fmt.Errorf("missing consumerGroup or topic")
	}
	r.maxMsgs = int(maxMsgs)
	r.suspend = time.Duration(suspend) * time.Millisecond
	return r, nil
}

// heldPull is a long-polling pull waiting for a message.
type heldPull struct {
	in   *inbound
	req  *pullRequest
	sub  *subscription
	done bool
}

func handlePullMessage(s *state, in *inbound) *Command {
	r, err := parsePullRequest(in.cmd)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	// As PullMessageProcessor, before it looks at the topic.
	s.knowGroup(r.group)
	return s.pull(in, r, true)
}

func (s *state) pull(in *inbound, r *pullRequest, allowSuspend bool) *Command {
	t := s.topics[r.topic]
	if t == nil {
		return respond(codeTopicNotExist, fmt.Sprintf("topic[%s] not exist, apply first please!", r.topic))
	}
	if t.perm&permRead == 0 {
		return respond(codeNoPermission, fmt.Sprintf("the topic[%s] pulling message is forbidden", r.topic))
	}
	if r.queueID < 0 || int(r.queueID) >= t.readQueues {
		return respond(codeSystemError, fmt.Sprintf("queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d] consumer:[%s]",
			r.queueID, r.topic, t.readQueues, in.c.remote))
	}
	sub, resp := s.pullSubscription(r)
	if resp != nil {
		return resp
	}

	q := t.queues[r.queueID]
	maxOffset := int64(len(q.msgs))
	const minOffset = 0
	var (
		code     int16
		status   string // GetMessageStatus's name: the response's remark
		next     int64
		body     [][]byte
		foundAny bool
	)
	switch {
	case maxOffset == 0:
		code, next, status = codePullNotFound, 0, "NO_MESSAGE_IN_QUEUE"
		if r.offset != 0 {
			code = codePullOffsetMoved
		}
	case r.offset < minOffset:
		code, next, status = codePullOffsetMoved, minOffset, "OFFSET_TOO_SMALL"
	case r.offset == maxOffset:
		code, next, status = codePullNotFound, r.offset, "OFFSET_OVERFLOW_ONE"
	case r.offset > maxOffset:
		// OFFSET_OVERFLOW_BADLY: to the max offset, as 5.x answers (4.9
		// went back to the min offset when it was 0).
		code, next, status = codePullOffsetMoved, maxOffset, "OFFSET_OVERFLOW_BADLY"
	default:
		scanLimit := int64(max(minFilterEntries, r.maxMsgs))
		size, off := 0, r.offset
		for ; off < maxOffset && off-r.offset < scanLimit; off++ {
			m := q.msgs[off]
			// DefaultMessageStore.isTheBatchFull, for messages in memory.
			if len(body) > 0 && (len(body) >= r.maxMsgs || len(body) >= maxPullCount || size+len(m.enc) > maxPullBytes) {
				break
			}
			if !sub.matches(m) {
				continue
			}
			body = append(body, m.enc)
			size += len(m.enc)
			foundAny = true
		}
		next = off
		code, status = codePullRetryImmediately, "NO_MATCHED_MESSAGE"
		if foundAny {
			code, status = codeSuccess, "FOUND"
		}
	}

	if allowSuspend && r.sysFlag&pullFlagCommitOffset != 0 {
		s.commitOffset(offsetKey{r.group, r.topic, r.queueID}, r.commitOffset)
	}

	if code == codePullNotFound && allowSuspend && r.sysFlag&pullFlagSuspend != 0 {
		h := &heldPull{in: in, req: r, sub: sub}
		k := queueKey{r.topic, r.queueID}
		s.held[k] = append(s.held[k], h)
		s.after(r.suspend, func() { s.releaseHeld(k, h) })
		return nil
	}

	resp = &Command{
		Code:   code,
		Remark: status,
		ExtFields: map[string]string{
			"nextBeginOffset":      strconv.FormatInt(next, 10),
			"minOffset":            strconv.FormatInt(minOffset, 10),
			"maxOffset":            strconv.FormatInt(maxOffset, 10),
			"suggestWhichBrokerId": "0",
			// 5.x adds these; the clients do not read them.
			"topicSysFlag": "0",
			"groupSysFlag": "0",
		},
	}
	if body != nil {
		s.writeBody(in, resp, body)
		return nil
	}
	return resp
}

func (s *state) pullSubscription(r *pullRequest) (*subscription, *Command) {
	if r.expressionType != "" && r.expressionType != "TAG" {
		return nil, respond(codeSystemError, "The broker does not support consumer to filter message by "+r.expressionType)
	}
	if r.sysFlag&pullFlagSubscription != 0 {
		return parseSubscription(r.subscription), nil
	}
	g := s.groups[r.group]
	if g == nil {
		return nil, respond(codeSubscriptionNotExist, fmt.Sprintf("the consumer's group info not exist, group: %s", r.group))
	}
	sd := g.subs[r.topic]
	if sd == nil {
		return nil, respond(codeSubscriptionNotExist, fmt.Sprintf("the consumer's subscription not exist, group: %s", r.group))
	}
	if sd.version < r.subVersion {
		return nil, respond(codeSubscriptionNotLatest, "the consumer's subscription not latest")
	}
	if sd.expressionType != "" && sd.expressionType != "TAG" {
		return nil, respond(codeSystemError, "The broker does not support consumer to filter message by "+sd.expressionType)
	}
	return sd.sub, nil
}

// wakeHeld re-runs the pulls held on a queue that the new message satisfies
// (PullRequestHoldService.notifyMessageArriving).
func (s *state) wakeHeld(k queueKey, m *message) {
	hs := s.held[k]
	if len(hs) == 0 {
		return
	}
	kept := hs[:0]
	var ready []*heldPull
	for _, h := range hs {
		if m.queueOffset >= h.req.offset && h.sub.matches(m) {
			ready = append(ready, h)
			continue
		}
		kept = append(kept, h)
	}
	clear(hs[len(kept):])
	s.held[k] = kept
	for _, h := range ready {
		h.done = true
		s.rerunHeld(h)
	}
}

// releaseHeld answers a held pull whose suspend time is over.
func (s *state) releaseHeld(k queueKey, h *heldPull) {
	if h.done {
		return
	}
	h.done = true
	hs := s.held[k]
	for i, x := range hs {
		if x == h {
			s.held[k] = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	s.rerunHeld(h)
}

func (s *state) rerunHeld(h *heldPull) {
	if !s.conns[h.in.c] {
		return
	}
	if resp := s.pull(h.in, h.req, false); resp != nil {
		s.reply(h.in, resp)
	}
}

// flushHeld answers every held pull with SERVICE_NOT_AVAILABLE before the
// broker closes connections (CloseClientConnections, Restart).
// rocketmq-client-go treats that code as a pull error and pulls again 3 s
// later: by then it has seen the connection close and opens a new one. A pull
// left unanswered would instead wait for its 30 s timeout, and a PULL_NOT_FOUND
// would make it pull again at once, most likely on the closing connection.
func (s *state) flushHeld() {
	for k, hs := range s.held {
		for _, h := range hs {
			if !h.done {
				h.done = true
				s.reply(h.in, respond(codeServiceNotAvailable, "the broker is closing this connection"))
			}
		}
		delete(s.held, k)
	}
}

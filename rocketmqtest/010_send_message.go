package rocketmqtest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SEND_MESSAGE (10), as SendMessageProcessor.sendMessage.
//
// Implemented: topic auto-creation (see WithAutoCreateTopics), queueId < 0
// picking a random writable queue, the message checks of the Java broker
// (topic length, properties length, body size, writable queue), delay levels
// (DELAY property: parked in SCHEDULE_TOPIC_XXXX, delivered after the scaled
// delay), the CLUSTER property, retry-topic sends past maxReconsumeTimes going
// to %DLQ%group, and the response fields msgId (OffsetMsgId), queueId,
// queueOffset, MSG_REGION and TRACE_ON. The DuplicateSends fault stores the
// message twice.
//
// Not implemented: transactional (half) messages are refused with
// NO_PERMISSION; no flush or slave acknowledgement codes; no ACL.

func init() { handlers[CodeSendMessage] = handleSendMessage }

// sendHeader is SendMessageRequestHeader.
type sendHeader struct {
	producerGroup     string
	topic             string
	queueID           int32
	sysFlag           int32
	bornTimestamp     int64
	flag              int32
	properties        string
	reconsumeTimes    int32
	maxReconsumeTimes int32
	batch             bool
}

// sendFields names the SendMessageRequestHeader fields in a request:
// SEND_MESSAGE uses the Java field names, SEND_MESSAGE_V2 and
// SEND_BATCH_MESSAGE one-letter names for the same fields.
type sendFields struct {
	producerGroup, topic, queueID, sysFlag, bornTimestamp, flag,
	properties, reconsumeTimes, maxReconsumeTimes, batch string
}

var (
	sendFieldsV1 = sendFields{"producerGroup", "topic", "queueId", "sysFlag", "bornTimestamp", "flag",
		"properties", "reconsumeTimes", "maxReconsumeTimes", "batch"}
	sendFieldsV2 = sendFields{"a", "b", "e", "f", "g", "h", "i", "j", "l", "m"}
)

func parseSendHeader(c *Command) (*sendHeader, error) { return parseSendFields(c, &sendFieldsV1) }

// parseSendHeaderV2 parses SendMessageRequestHeaderV2, the header of
// SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE.
func parseSendHeaderV2(c *Command) (*sendHeader, error) { return parseSendFields(c, &sendFieldsV2) }

// parseSendFields reads a send header. The numeric fields are read in a fixed
// order, so a request with several bad fields always reports the same one.
// An error names the Java field, and the one-letter name when it differs.
func parseSendFields(c *Command, f *sendFields) (*sendHeader, error) {
	h := &sendHeader{
		producerGroup: c.ext(f.producerGroup),
		topic:         c.ext(f.topic),
		properties:    c.ext(f.properties),
		batch:         c.extBool(f.batch),
	}
	named := func(java string, err error) error {
		if err != nil && f != &sendFieldsV1 {
			return fmt.Errorf("%s: %w", java, err)
		}
		return err
	}
	if h.topic == "" {
		return nil, fmt.Errorf("missing topic (header field %q)", f.topic)
	}
	var err error
	if h.queueID, err = c.extInt32(f.queueID); err != nil {
		return nil, named("queueId", err)
	}
	if h.sysFlag, err = c.extInt32(f.sysFlag); err != nil {
		return nil, named("sysFlag", err)
	}
	if h.bornTimestamp, err = c.extInt(f.bornTimestamp); err != nil {
		return nil, named("bornTimestamp", err)
	}
	if h.flag, err = c.extInt32(f.flag); err != nil {
		return nil, named("flag", err)
	}
	if h.reconsumeTimes, err = c.extInt32Or(f.reconsumeTimes, 0); err != nil {
		return nil, named("reconsumeTimes", err)
	}
	h.reconsumeTimes = max(h.reconsumeTimes, 0)
	if h.maxReconsumeTimes, err = c.extInt32Or(f.maxReconsumeTimes, -1); err != nil {
		return nil, named("maxReconsumeTimes", err)
	}
	return h, nil
}

func handleSendMessage(s *state, in *inbound) *Command {
	h, err := parseSendHeader(in.cmd)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	return s.sendMessage(in, h)
}

// sendMessage stores one message sent by SEND_MESSAGE or SEND_MESSAGE_V2.
func (s *state) sendMessage(in *inbound, h *sendHeader) *Command {
	t, resp := s.checkSend(h)
	if resp != nil {
		return resp
	}
	if h.sysFlag&sysFlagTransactionMask == sysFlagTransactionPrep {
		return respond(codeNoPermission, "rocketmqtest does not support transactional messages")
	}
	if v, _ := property(h.properties, propTransPrepared); v == "true" {
		return respond(codeNoPermission, "rocketmqtest does not support transactional messages")
	}
	if len(in.cmd.Body) > maxMessageSize {
		return respond(codeMessageIllegal, fmt.Sprintf("the message body size over max value, MAX: %d", maxMessageSize))
	}
	m := &message{
		topic:          t.name,
		queueID:        h.queueID,
		flag:           h.flag,
		sysFlag:        h.sysFlag,
		body:           in.cmd.Body,
		props:          withBrokerProperties(h.properties),
		bornTimestamp:  h.bornTimestamp,
		bornHost:       hostPortOf(in.c.remote),
		reconsumeTimes: h.reconsumeTimes,
	}
	// 5.x gives a message sent without a UNIQ_KEY one (rocketmq-client-go
	// always sets it on single messages; raw clients may not).
	if _, ok := property(m.props, propUniqKey); !ok {
		m.props = withProperty(m.props, propUniqKey, s.newUniqKey())
	}
	s.retryToDLQ(m, h)
	if err := m.check(); err != nil {
		return respond(codeMessageIllegal, err.Error())
	}
	queueID, dup := m.queueID, *m
	stored := s.put(m)
	if s.fault(faultDuplicateSend, in.cmd.Code) != nil {
		s.put(&dup)
	}
	// The response names the requested queue even for a delayed message,
	// whose offset is in the schedule topic, as the Java broker does.
	sent := sendResponse(queueID, stored.queueOffset, stored.offsetMsgID())
	// 5.x answers the message's UNIQ_KEY as its transaction id, for any
	// message that has one.
	if id, ok := property(stored.props, propUniqKey); ok {
		sent.ExtFields["transactionId"] = id
	}
	return sent
}

// checkSend is AbstractSendMessageProcessor.msgCheck: the topic must exist
// (or be creatable) and be writable, and the queue id must be valid. A
// negative queue id picks a random writable queue.
func (s *state) checkSend(h *sendHeader) (*topic, *Command) {
	if len(h.topic) > 127 {
		return nil, respond(codeMessageIllegal, "the topic is longer than 127 characters")
	}
	if h.topic == defaultTopic || h.topic == scheduleTopic {
		return nil, respond(codeNoPermission, fmt.Sprintf("sending message to topic[%s] is forbidden", h.topic))
	}
	t := s.topic(h.topic, true)
	if t == nil {
		return nil, respond(codeTopicNotExist, fmt.Sprintf("topic[%s] not exist, apply first please!", h.topic))
	}
	if t.perm&permWrite == 0 && !strings.HasPrefix(h.topic, dlqTopicPrefix) {
		return nil, respond(codeNoPermission, fmt.Sprintf("the topic[%s] sending message is forbidden", h.topic))
	}
	if t.writeQueues == 0 {
		return nil, respond(codeNoPermission, fmt.Sprintf("the topic[%s] has no write queue", h.topic))
	}
	if h.queueID < 0 {
		h.queueID = int32(rand.IntN(t.writeQueues))
	}
	if int(h.queueID) >= t.writeQueues {
		return nil, respond(codeSystemError, fmt.Sprintf("request queueId[%d] is illegal, topic: %s, writeQueueNums: %d", h.queueID, t.name, t.writeQueues))
	}
	return t, nil
}

// retryToDLQ is SendMessageProcessor.handleRetryAndDLQ: a message sent to a
// retry topic whose reconsume count is past the maximum goes to the DLQ (5.x;
// 4.9 sent it there once the count reached the maximum).
func (s *state) retryToDLQ(m *message, h *sendHeader) {
	group, ok := strings.CutPrefix(m.topic, retryTopicPrefix)
	if !ok {
		return
	}
	maxTimes := int32(s.cfg.maxReconsumeTimes)
	if h.maxReconsumeTimes >= 0 {
		maxTimes = h.maxReconsumeTimes
	}
	if m.reconsumeTimes <= maxTimes {
		return
	}
	dlq := s.topic(dlqTopicPrefix+group, false)
	m.topic, m.queueID = dlq.name, 0
}

// withBrokerProperties adds the properties the Java broker (5.x) stamps on
// every message sent, singly or in a batch, where the message has none:
// CLUSTER, MSG_REGION and TRACE_ON.
func withBrokerProperties(props string) string {
	return withProperty(withProperty(withProperty(props, propCluster, clusterName), "MSG_REGION", "DefaultRegion"), "TRACE_ON", "true")
}

// withProperty adds the property key=value to props unless it has key.
func withProperty(props, key, value string) string {
	if _, ok := property(props, key); ok {
		return props
	}
	if props != "" && !strings.HasSuffix(props, "\x02") {
		props += "\x02"
	}
	return props + key + "\x01" + value + "\x02"
}

func sendResponse(queueID int32, queueOffset int64, msgID string) *Command {
	return &Command{
		Code: codeSuccess,
		ExtFields: map[string]string{
			"msgId":       msgID,
			"queueId":     strconv.Itoa(int(queueID)),
			"queueOffset": strconv.FormatInt(queueOffset, 10),
			"MSG_REGION":  "DefaultRegion",
			"TRACE_ON":    "true",
		},
	}
}

package rocketmqtest

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// SEND_BATCH_MESSAGE (320): several messages for one queue in one body, with
// the SEND_MESSAGE_V2 header (MessageDecoder.decodeMessages layout per
// message: int32 totalSize | int32 magic | int32 bodyCRC | int32 flag |
// int32 bodyLen | body | int16 propsLen | props).
//
// Implemented: each message stored in order in the requested queue, with the
// header's sysFlag and born timestamp; the response's msgId is the
// comma-separated OffsetMsgIds and queueOffset the first message's offset.
// As in the Java broker, delayed messages and retry topics are refused with
// MESSAGE_ILLEGAL, and no UNIQ_KEY is added (clients set it, or not).
// The DuplicateSends fault stores the whole batch twice.
//
// Not implemented: compressed batches are stored as sent.

func init() { handlers[CodeSendBatchMessage] = handleSendBatchMessage }

func handleSendBatchMessage(s *state, in *inbound) *Command {
	h, err := parseSendHeaderV2(in.cmd)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	h.batch = true
	return s.sendBatch(in, h)
}

func (s *state) sendBatch(in *inbound, h *sendHeader) *Command {
	if strings.HasPrefix(h.topic, retryTopicPrefix) {
		return respond(codeMessageIllegal, "batch request does not support retry group "+h.topic)
	}
	t, resp := s.checkSend(h)
	if resp != nil {
		return resp
	}
	if len(in.cmd.Body) > maxMessageSize {
		return respond(codeMessageIllegal, fmt.Sprintf("the message body size over max value, MAX: %d", maxMessageSize))
	}
	msgs, err := decodeBatch(in.cmd.Body)
	if err != nil {
		return respond(codeMessageIllegal, err.Error())
	}
	for _, m := range msgs {
		if m.delayLevel() > 0 {
			return respond(codeMessageIllegal, "batch message does not support delay")
		}
		m.topic, m.queueID, m.sysFlag, m.bornTimestamp = t.name, h.queueID, h.sysFlag, h.bornTimestamp
		m.bornHost = hostPortOf(in.c.remote)
		m.props = withBrokerProperties(m.props)
		if err := m.check(); err != nil {
			return respond(codeMessageIllegal, err.Error())
		}
	}
	copies := 1
	if s.fault(faultDuplicateSend, in.cmd.Code) != nil {
		copies = 2
	}
	var (
		ids   []string
		first *message
	)
	for range copies {
		for _, m := range msgs {
			cp := *m
			stored := s.put(&cp)
			if first == nil {
				first = stored
			}
			ids = append(ids, stored.offsetMsgID())
		}
	}
	return sendResponse(h.queueID, first.queueOffset, strings.Join(ids[:len(msgs)], ","))
}

// decodeBatch splits a batch body into messages (flag, body, properties).
func decodeBatch(b []byte) ([]*message, error) {
	var msgs []*message
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("truncated batch message")
		}
		size := int(int32(binary.BigEndian.Uint32(b)))
		if size < 22 || size > len(b) {
			return nil, fmt.Errorf("bad batch message size %d", size)
		}
		r := reader{b: b[4:size]}
		r.u32() // magic code
		r.u32() // body CRC, recomputed at store time
		flag := int32(r.u32())
		body := r.bytes(int(int32(r.u32())))
		props := r.bytes(int(r.u16()))
		if r.err != nil {
			return nil, fmt.Errorf("bad batch message: %v", r.err)
		}
		msgs = append(msgs, &message{flag: flag, body: body, props: string(props)})
		b = b[size:]
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("empty batch")
	}
	return msgs, nil
}

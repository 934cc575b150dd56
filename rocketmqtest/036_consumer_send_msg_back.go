package rocketmqtest

import (
	"fmt"
	"strconv"
)

// CONSUMER_SEND_MSG_BACK (36), as SendMessageProcessor.consumerSendMsgBack
// (4.x): the message at the commit-log offset is stored again in
// %RETRY%group (1 queue) with ReconsumeTimes+1, the RETRY_TOPIC property set
// to its original topic (kept if already set), ORIGIN_MESSAGE_ID set, its
// UNIQ_KEY and other properties kept, after delay level 3+ReconsumeTimes when
// the request says 0 (scaled by WithDelayScale). When ReconsumeTimes reached
// the maximum (the request's maxReconsumeTimes, else WithMaxReconsumeTimes)
// or the delay level is negative, it goes to %DLQ%group instead, at once.
// A missing group or one too long for %RETRY%group to be a topic name (127
// bytes, as HEART_BEAT checks), a missing, malformed or unknown offset, or a
// malformed delayLevel or maxReconsumeTimes, gets SYSTEM_ERROR saying which.
//
// Faults: FailSendBacks answers nothing (the client's call times out),
// RejectSendBacks answers SYSTEM_ERROR without storing.
//
// Not implemented: unit mode, per-group retry queue counts.

func init() { handlers[CodeConsumerSendMsgBack] = handleConsumerSendMsgBack }

func handleConsumerSendMsgBack(s *state, in *inbound) *Command {
	c := in.cmd
	if s.fault(faultFailSendBack, c.Code) != nil {
		return nil
	}
	if s.fault(faultRejectSendBack, c.Code) != nil {
		return respond(codeSystemError, "send-back rejected by the RejectSendBacks fault")
	}
	groupName := c.ext("group")
	if err := validGroup(groupName); err != nil {
		return respond(codeSystemError, err.Error())
	}
	s.knowGroup(groupName)
	offset, err := c.extInt("offset")
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	delayLevel32, err := c.extInt32Or("delayLevel", 0)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	delayLevel := int64(delayLevel32)
	maxTimes32, err := c.extInt32Or("maxReconsumeTimes", int32(s.cfg.maxReconsumeTimes))
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	maxTimes := int64(maxTimes32)
	orig := s.commitLog[offset]
	if orig == nil {
		return respond(codeSystemError, fmt.Sprintf("look message by offset failed, %d", offset))
	}

	props := parseProperties(orig.props)
	if _, ok := props[propRetryTopic]; !ok {
		props[propRetryTopic] = orig.topic
	}
	props[propWait] = "false"
	newTopic := s.topic(retryTopicPrefix+groupName, false)
	if int64(orig.reconsumeTimes) >= maxTimes || delayLevel < 0 {
		newTopic = s.topic(dlqTopicPrefix+groupName, false)
		props[propDelay] = "0" // as 5.x: what a retry carried must not delay the DLQ
	} else {
		if delayLevel == 0 {
			delayLevel = 3 + int64(orig.reconsumeTimes)
		}
		props[propDelay] = strconv.FormatInt(delayLevel, 10)
	}
	if _, ok := props[propOriginMessageID]; !ok {
		props[propOriginMessageID] = orig.offsetMsgID()
	}
	m := &message{
		topic:          newTopic.name,
		queueID:        0,
		flag:           orig.flag,
		sysFlag:        orig.sysFlag &^ (sysFlagBornHostV6 | sysFlagStoreHostV6),
		body:           orig.body,
		props:          formatProperties(props),
		bornTimestamp:  orig.bornTimestamp,
		bornHost:       orig.bornHost,
		reconsumeTimes: orig.reconsumeTimes + 1,
	}
	if err := m.check(); err != nil {
		return respond(codeSystemError, err.Error())
	}
	s.put(m)
	return success()
}

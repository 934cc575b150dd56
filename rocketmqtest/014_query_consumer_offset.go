package rocketmqtest

import "strconv"

// QUERY_CONSUMER_OFFSET (14), as ConsumerManageProcessor.queryConsumerOffset.
//
// Implemented: the committed offset; without one, offset 0 when the queue's
// min offset is 0 and its first message is still in memory — always the case
// here, since nothing is ever deleted — so a new group starts at the
// beginning of each queue whatever its ConsumeFromWhere, exactly like a fresh
// Java broker. QUERY_NOT_FOUND is therefore never returned.

func init() { handlers[CodeQueryConsumerOffset] = handleQueryConsumerOffset }

func handleQueryConsumerOffset(s *state, in *inbound) *Command {
	c := in.cmd
	qid, err := c.extInt("queueId")
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	off, ok := s.offsets[offsetKey{c.ext("consumerGroup"), c.ext("topic"), int32(qid)}]
	if !ok {
		off = 0
	}
	return &Command{Code: codeSuccess, ExtFields: map[string]string{"offset": strconv.FormatInt(off, 10)}}
}

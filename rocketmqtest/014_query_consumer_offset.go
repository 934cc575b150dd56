package rocketmqtest

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
	qid, resp := queueIDOf(c)
	if resp != nil {
		return resp
	}
	// No committed offset: 0 (see above).
	return offsetResponse(s.offsets[offsetKey{c.ext("consumerGroup"), c.ext("topic"), qid}])
}

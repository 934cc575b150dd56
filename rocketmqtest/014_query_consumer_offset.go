package rocketmqtest

// QUERY_CONSUMER_OFFSET (14), as ConsumerManageProcessor.queryConsumerOffset
// of Apache RocketMQ 5.x.
//
// Implemented: the committed offset when it is at least 0. A negative one
// (UPDATE_CONSUMER_OFFSET stores -1 as given) counts as none, as the Java
// broker only answers a stored offset >= 0. Without one: QUERY_NOT_FOUND when
// the request says setZeroIfNotFound=false; offset 0 when the queue's min
// offset is 0 and its first message is still in memory — here, whenever the
// queue has a message, since nothing is ever deleted — so a new group starts
// at the beginning of each such queue whatever its ConsumeFromWhere, exactly
// like a fresh Java broker; QUERY_NOT_FOUND for an empty or unknown queue.
// (4.9 answered 0 for an empty queue too; rocketmq-client-go v2.1.2 then
// starts at the max offset either way, which is 0.)
//
// Not implemented: static topics, server-side offset reset.

func init() { handlers[CodeQueryConsumerOffset] = handleQueryConsumerOffset }

func handleQueryConsumerOffset(s *state, in *inbound) *Command {
	c := in.cmd
	qid, resp := queueIDOf(c)
	if resp != nil {
		return resp
	}
	topic := c.ext("topic")
	if off, ok := s.offsets[offsetKey{c.ext("consumerGroup"), topic, qid}]; ok && off >= 0 {
		return offsetResponse(off)
	}
	// Java reads setZeroIfNotFound with Boolean.parseBoolean: present and
	// anything but "true" means false.
	if _, ok := c.ExtFields["setZeroIfNotFound"]; ok && !c.extBool("setZeroIfNotFound") {
		return respond(codeQueryNotFound, "Not found, do not set to zero, maybe this group boot first")
	}
	if q := s.queue(topic, qid); q != nil && len(q.msgs) > 0 {
		return offsetResponse(0)
	}
	return respond(codeQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
}

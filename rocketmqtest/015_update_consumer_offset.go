package rocketmqtest

// UPDATE_CONSUMER_OFFSET (15), as ConsumerManageProcessor.updateConsumerOffset.
//
// Implemented: the offset is stored as given, a negative one included (no
// check at all, like the Java ConsumerOffsetManager); QUERY_CONSUMER_OFFSET
// then answers as if there were none. rocketmq-client-go sends it one-way, so
// there is usually no response; a one-way request with a malformed field is
// logged. The DropOffsetCommits and DelayOffsetCommits faults apply here and
// to the commit offset carried by PULL_MESSAGE.
//
// Not implemented: the Java broker's SUBSCRIPTION_GROUP_NOT_EXIST and
// TOPIC_NOT_EXIST answers for a group or topic it does not know.

func init() { handlers[CodeUpdateConsumerOffset] = handleUpdateConsumerOffset }

func handleUpdateConsumerOffset(s *state, in *inbound) *Command {
	c := in.cmd
	qid, resp := queueIDOf(c)
	if resp != nil {
		return resp
	}
	off, err := c.extInt("commitOffset")
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	s.commitOffset(offsetKey{c.ext("consumerGroup"), c.ext("topic"), qid}, off)
	return success()
}

// commitOffset stores a consumer offset unless a fault drops or delays it.
func (s *state) commitOffset(k offsetKey, off int64) {
	if f := s.fault(faultDropCommit, CodeUpdateConsumerOffset); f != nil {
		return
	}
	if f := s.fault(faultDelayCommit, CodeUpdateConsumerOffset); f != nil {
		s.after(f.d, func() { s.setOffset(k, off) })
		return
	}
	s.setOffset(k, off)
}

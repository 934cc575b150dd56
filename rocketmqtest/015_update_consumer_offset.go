package rocketmqtest

// UPDATE_CONSUMER_OFFSET (15), as ConsumerManageProcessor.updateConsumerOffset.
//
// Implemented: the offset is stored as given (no monotonic check, like the
// Java ConsumerOffsetManager). rocketmq-client-go sends it one-way, so there
// is usually no response. The DropOffsetCommits and DelayOffsetCommits faults
// apply here and to the commit offset carried by PULL_MESSAGE.

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

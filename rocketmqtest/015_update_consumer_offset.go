package rocketmqtest

// UPDATE_CONSUMER_OFFSET (15), as ConsumerManageProcessor.updateConsumerOffset.
//
// Implemented: the offset is stored as given, a negative one included (no
// check at all, like the Java ConsumerOffsetManager); QUERY_CONSUMER_OFFSET
// then answers as if there were none. A group not in the subscription-group
// table (never seen in a heartbeat, pull or send-back) gets
// SUBSCRIPTION_GROUP_NOT_EXIST, "Group <group> not exist!", as on Apache
// RocketMQ 5.x. rocketmq-client-go sends it one-way, so there is usually no
// response (a refused commit is then lost, as on the Java broker); a one-way
// request with a malformed field or an unknown group is logged. The
// DropOffsetCommits and DelayOffsetCommits faults apply here and to the
// commit offset carried by PULL_MESSAGE (which adds its group to the table
// first).
//
// Not implemented: the Java broker's TOPIC_NOT_EXIST answer for a topic it
// does not know.

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
	if group := c.ext("consumerGroup"); !s.knownGroups[group] {
		return respond(codeSubscriptionGroupNotExist, "Group "+group+" not exist!")
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

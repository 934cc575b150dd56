package rocketmqtest

// UPDATE_AND_CREATE_TOPIC (17), as AdminBrokerProcessor.updateAndCreateTopic:
// creates or updates a topic's read and write queue counts and permission.
// Queues are only ever added: shrinking a topic hides its extra queues from
// routes but keeps their messages. TBW102 and the schedule topic cannot be
// changed.

func init() { handlers[CodeUpdateAndCreateTopic] = handleUpdateAndCreateTopic }

func handleUpdateAndCreateTopic(s *state, in *inbound) *Command {
	c := in.cmd
	name := c.ext("topic")
	if name == "" || len(name) > 127 {
		return respond(codeSystemError, "invalid topic name")
	}
	if name == defaultTopic || name == scheduleTopic {
		return respond(codeSystemError, "The topic["+name+"] is conflict with system reserved words.")
	}
	read, err := c.extInt32("readQueueNums")
	if err != nil {
		return respond(codeSystemError, "invalid queue numbers: "+err.Error())
	}
	write, err := c.extInt32("writeQueueNums")
	if err != nil {
		return respond(codeSystemError, "invalid queue numbers: "+err.Error())
	}
	if read < 0 || write < 0 || read > 1024 || write > 1024 {
		return respond(codeSystemError, "invalid queue numbers")
	}
	perm, err := c.extInt32Or("perm", permRead|permWrite)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	s.createTopic(name, int(read), int(write), int(perm))
	ok := success()
	// What the Java broker answers: it never sets this response's remark,
	// which keeps RemotingCommand's default.
	ok.Remark = "not set any response code"
	return ok
}

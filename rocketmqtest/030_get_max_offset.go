package rocketmqtest

import "strconv"

// GET_MAX_OFFSET (30): the queue's max offset, the offset the next message
// will get; 0 for an unknown topic or queue, as the Java broker answers.

func init() { handlers[CodeGetMaxOffset] = handleGetMaxOffset }

func handleGetMaxOffset(s *state, in *inbound) *Command {
	qid, err := in.cmd.extInt("queueId")
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	var off int64
	if q := s.queue(in.cmd.ext("topic"), int32(qid)); q != nil {
		off = int64(len(q.msgs))
	}
	return &Command{Code: codeSuccess, ExtFields: map[string]string{"offset": strconv.FormatInt(off, 10)}}
}

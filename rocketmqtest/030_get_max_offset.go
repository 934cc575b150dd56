package rocketmqtest

import "strconv"

// GET_MAX_OFFSET (30): the queue's max offset, the offset the next message
// will get; 0 for an unknown topic or queue, as the Java broker answers.

func init() { handlers[CodeGetMaxOffset] = handleGetMaxOffset }

func handleGetMaxOffset(s *state, in *inbound) *Command {
	qid, resp := queueIDOf(in.cmd)
	if resp != nil {
		return resp
	}
	var off int64
	if q := s.queue(in.cmd.ext("topic"), qid); q != nil {
		off = int64(len(q.msgs))
	}
	return offsetResponse(off)
}

// queueIDOf returns the request's queueId field, or the SYSTEM_ERROR response
// for a missing or malformed one.
func queueIDOf(c *Command) (int32, *Command) {
	qid, err := c.extInt32("queueId")
	if err != nil {
		return 0, respond(codeSystemError, err.Error())
	}
	return qid, nil
}

// offsetResponse is the response of the offset queries: {"offset": off}.
func offsetResponse(off int64) *Command {
	return &Command{Code: codeSuccess, ExtFields: map[string]string{"offset": strconv.FormatInt(off, 10)}}
}

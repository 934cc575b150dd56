package rocketmqtest

import "sort"

// SEARCH_OFFSET_BY_TIMESTAMP (29): the offset of the first message in the
// queue stored at or after the timestamp (milliseconds), or the max offset
// when there is none. The Java broker's binary search over the consume queue
// gives the same answer for a queue whose store times only increase.

func init() { handlers[CodeSearchOffsetByTime] = handleSearchOffsetByTimestamp }

func handleSearchOffsetByTimestamp(s *state, in *inbound) *Command {
	c := in.cmd
	qid, resp := queueIDOf(c)
	if resp != nil {
		return resp
	}
	ts, err := c.extInt("timestamp")
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	var off int64
	if q := s.queue(c.ext("topic"), qid); q != nil {
		off = int64(sort.Search(len(q.msgs), func(i int) bool { return q.msgs[i].storeTimestamp >= ts }))
	}
	return offsetResponse(off)
}

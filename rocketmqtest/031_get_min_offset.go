package rocketmqtest

// GET_MIN_OFFSET (31): always 0, since the broker never deletes messages.

func init() { handlers[CodeGetMinOffset] = handleGetMinOffset }

func handleGetMinOffset(s *state, in *inbound) *Command {
	if _, resp := queueIDOf(in.cmd); resp != nil {
		return resp
	}
	return offsetResponse(0)
}

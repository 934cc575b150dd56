package rocketmqtest

// GET_MIN_OFFSET (31): always 0, since the broker never deletes messages.

func init() { handlers[CodeGetMinOffset] = handleGetMinOffset }

func handleGetMinOffset(s *state, in *inbound) *Command {
	if _, err := in.cmd.extInt("queueId"); err != nil {
		return respond(codeSystemError, err.Error())
	}
	return &Command{Code: codeSuccess, ExtFields: map[string]string{"offset": "0"}}
}

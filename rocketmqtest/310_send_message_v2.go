package rocketmqtest

// SEND_MESSAGE_V2 (310): SEND_MESSAGE with one-letter header field names
// (SendMessageRequestHeaderV2), which the Java client uses by default and
// rocketmq-client-go for its SendMessageV2 path. Same behaviour as
// SEND_MESSAGE; see 010_send_message.go.

func init() { handlers[CodeSendMessageV2] = handleSendMessageV2 }

func handleSendMessageV2(s *state, in *inbound) *Command {
	h, err := parseSendHeaderV2(in.cmd)
	if err != nil {
		return respond(codeSystemError, err.Error())
	}
	if h.batch {
		return s.sendBatch(in, h)
	}
	return s.sendMessage(in, h)
}

package rocketmqtest

// UNREGISTER_CLIENT (35), as ClientManageProcessor.unregisterClient: the
// client on this connection leaves the named consumer group (the others are
// notified) and producer group. rocketmq-client-go never sends it; closing
// the connection has the same effect.

func init() { handlers[CodeUnregisterClient] = handleUnregisterClient }

func handleUnregisterClient(s *state, in *inbound) *Command {
	if name := in.cmd.ext("consumerGroup"); name != "" {
		if g := s.groups[name]; g != nil && g.removeConn(in.c) {
			s.notifyGroup(name)
		}
	}
	if name := in.cmd.ext("producerGroup"); name != "" {
		delete(s.producerClients[name], in.c)
	}
	return success()
}

package rocketmqtest

import "encoding/json"

// GET_CONSUMER_LIST_BY_GROUP (38): the client ids of the group's connected
// consumers as {"consumerIdList":[...]}, or SYSTEM_ERROR "no consumer for
// this group" when it has none, as ConsumerManageProcessor answers. Clients
// away after a broker-side close count as connected (see group.go).

func init() { handlers[CodeGetConsumerListByGroup] = handleGetConsumerListByGroup }

func handleGetConsumerListByGroup(s *state, in *inbound) *Command {
	name := in.cmd.ext("consumerGroup")
	var ids []string
	if g := s.groups[name]; g != nil {
		ids = g.clientIDs()
	}
	if len(ids) == 0 {
		return respond(codeSystemError, "no consumer for this group, "+name)
	}
	body, _ := json.Marshal(struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}{ids})
	return &Command{Code: codeSuccess, Body: body}
}

package rocketmqtest

import "encoding/json"

// GET_CONSUMER_LIST_BY_GROUP (38): the client ids of the group's connected
// consumers as {"consumerIdList":[...]}, or SYSTEM_ERROR "no consumer for
// this group" when it has none, as ConsumerManageProcessor answers.

func init() { handlers[CodeGetConsumerListByGroup] = handleGetConsumerListByGroup }

func handleGetConsumerListByGroup(s *state, in *inbound) *Command {
	name := in.cmd.ext("consumerGroup")
	g := s.groups[name]
	if g == nil || len(g.clients) == 0 {
		return respond(codeSystemError, "no consumer for this group, "+name)
	}
	body, _ := json.Marshal(struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}{g.clientIDs()})
	return &Command{Code: codeSuccess, Body: body}
}

package rocketmqtest

import (
	"encoding/json"
	"strconv"
)

// GET_ROUTEINFO_BY_TOPIC (105), the name server's DefaultRequestProcessor:
// a TopicRouteData with this one broker (id 0, the master, at Addr) and the
// topic's queue counts and permission. Unknown topics are created when
// auto-creation is on (retry topics always, with 1 queue); otherwise
// TOPIC_NOT_EXIST. TBW102 always exists, so a producer can fall back to it.
// brokerAddrs is written as standard JSON ({"0":"host:port"}); Java's
// fastjson writes {0:"host:port"}; clients accept both.
//
// Not implemented: orderTopicConf (order topics are configured per topic in
// the name server's KV config), filter servers.

func init() { handlers[CodeGetRouteInfoByTopic] = handleGetRouteInfo }

type queueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSysFlag"` // 4.x spelt it topicSynFlag; clients ignore it
}

type brokerData struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"`
	// EnableActingMaster is 5.x's, false without a controller.
	EnableActingMaster bool `json:"enableActingMaster"`
}

type topicRouteData struct {
	OrderTopicConf    string            `json:"orderTopicConf,omitempty"`
	QueueDatas        []queueData       `json:"queueDatas"`
	BrokerDatas       []brokerData      `json:"brokerDatas"`
	FilterServerTable map[string]string `json:"filterServerTable"`
}

func handleGetRouteInfo(s *state, in *inbound) *Command {
	name := in.cmd.ext("topic")
	var t *topic
	if name != "" && len(name) <= 127 {
		t = s.topic(name, true)
	}
	if t == nil {
		return respond(codeTopicNotExist, "No topic route info in name server for the topic: "+name)
	}
	body, _ := json.Marshal(topicRouteData{
		QueueDatas: []queueData{{
			BrokerName:     s.cfg.brokerName,
			ReadQueueNums:  t.readQueues,
			WriteQueueNums: t.writeQueues,
			Perm:           t.perm,
		}},
		BrokerDatas: []brokerData{{
			Cluster:     clusterName,
			BrokerName:  s.cfg.brokerName,
			BrokerAddrs: map[string]string{strconv.Itoa(0): s.b.Addr()},
		}},
		FilterServerTable: map[string]string{},
	})
	return &Command{Code: codeSuccess, Body: body}
}

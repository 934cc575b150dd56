package rocketmqtest

import (
	"encoding/json"
	"time"
)

// HEART_BEAT (34), as ClientManageProcessor.heartBeat and ConsumerManager.
//
// Implemented: consumer groups register the client on this connection and
// their subscriptions (TAG expressions, parsed on the broker as
// FilterAPI.buildSubscriptionData does, keeping the highest subVersion);
// %RETRY%group is created with 1 queue; when a new client joins a group or a
// subscribed topic appears or disappears, every client of the group gets
// NOTIFY_CONSUMER_IDS_CHANGED. Producer groups are recorded for Clients().
//
// A client whose connection the broker closed (Restart,
// CloseClientConnections) stays a member until it heartbeats again or the
// reconnect grace passes; see group.go.
//
// Not implemented: HEART_BEAT_V2 (the response does not offer it), expiry of clients that stop sending heartbeats (the Java
// broker drops them after 120 s); a closed connection or UNREGISTER_CLIENT
// removes them here.

func init() { handlers[CodeHeartbeat] = handleHeartbeat }

type heartbeatBody struct {
	ClientID        string `json:"clientID"`
	ProducerDataSet []struct {
		GroupName string `json:"groupName"`
	} `json:"producerDataSet"`
	ConsumerDataSet []struct {
		GroupName           string `json:"groupName"`
		ConsumeType         string `json:"consumeType"`
		MessageModel        string `json:"messageModel"`
		ConsumeFromWhere    any    `json:"consumeFromWhere"`
		SubscriptionDataSet []struct {
			Topic          string `json:"topic"`
			SubString      string `json:"subString"`
			SubVersion     int64  `json:"subVersion"`
			ExpressionType string `json:"expressionType"`
		} `json:"subscriptionDataSet"`
	} `json:"consumerDataSet"`
}

func handleHeartbeat(s *state, in *inbound) *Command {
	var hb heartbeatBody
	if err := json.Unmarshal(in.cmd.Body, &hb); err != nil {
		return respond(codeSystemError, "bad heartbeat body: "+err.Error())
	}
	now := time.Now()
	for _, p := range hb.ProducerDataSet {
		m := s.producerClients[p.GroupName]
		if m == nil {
			m = map[*conn]string{}
			s.producerClients[p.GroupName] = m
		}
		m[in.c] = hb.ClientID
	}
	for _, cd := range hb.ConsumerDataSet {
		if err := validGroup(cd.GroupName); err != nil {
			return respond(codeSystemError, "invalid consumer group name: "+err.Error())
		}
		s.knowGroup(cd.GroupName)
		g := s.group(cd.GroupName)
		g.consumeType, g.messageModel = cd.ConsumeType, cd.MessageModel
		if w, ok := cd.ConsumeFromWhere.(string); ok {
			g.consumeFromWhere = w
		}
		s.topic(retryTopicPrefix+cd.GroupName, false)

		changed := false
		if gc, ok := g.clients[in.c]; ok && gc.clientID == hb.ClientID {
			gc.lastHeartbeat = now
		} else {
			g.clients[in.c] = &groupClient{clientID: hb.ClientID, lastHeartbeat: now}
			// A client back from away was a member all along.
			_, wasAway := g.away[hb.ClientID]
			delete(g.away, hb.ClientID)
			changed = !wasAway
		}
		seen := map[string]bool{}
		for _, sd := range cd.SubscriptionDataSet {
			seen[sd.Topic] = true
			old := g.subs[sd.Topic]
			if old == nil {
				changed = true
			} else if sd.SubVersion <= old.version {
				// Only a newer subscription replaces it, whatever its
				// expression, as in ConsumerGroupInfo.updateSubscription.
				continue
			}
			s.setSubscription(g, &subscriptionData{
				topic:          sd.Topic,
				expressionType: sd.ExpressionType,
				version:        max(sd.SubVersion, 0),
				sub:            parseSubscription(sd.SubString),
			})
		}
		for t := range g.subs {
			if !seen[t] {
				s.setSubscription(g, &subscriptionData{topic: t, removed: true})
				changed = true
			}
		}
		if changed {
			s.notifyGroup(cd.GroupName)
		}
	}
	ok := success()
	// 5.x answers every (version 1) heartbeat with IS_SUB_CHANGE true. It
	// also says IS_SUPPORT_HEART_BEAT_V2, which rocketmqtest leaves out: it
	// does not take the version 2 heartbeats that would invite from a Java
	// client.
	ok.ExtFields = map[string]string{"IS_SUB_CHANGE": "true"}
	return ok
}

package rocketmqtest

import (
	"maps"
	"slices"
	"time"
)

// group is a consumer group as ConsumerGroupInfo keeps it: the clients that
// sent heartbeats for it, by connection, and the subscriptions they declared.
//
// Deviation from the Java broker, on purpose: a group's subscriptions outlive
// its last client. The Java broker forgets the group when its last channel
// closes, so after a broker restart a consumer's pulls fail with
// SUBSCRIPTION_NOT_EXIST until its next heartbeat, up to 30 s later with
// rocketmq-client-go; keeping them lets tests that restart the broker or close
// connections resume at once.
type group struct {
	name             string
	clients          map[*conn]*groupClient
	subs             map[string]*subscriptionData
	consumeType      string
	messageModel     string
	consumeFromWhere string
}

type groupClient struct {
	clientID      string
	lastHeartbeat time.Time
}

type subscriptionData struct {
	topic          string
	expressionType string
	version        int64
	sub            *subscription
	removed        bool // only in setSubscription: the topic is unsubscribed
}

// setSubscription records a group's subscription to a topic, or its removal,
// and logs it for WithDataDir, so a broker process started again serves pulls
// before the consumers' next heartbeats.
func (s *state) setSubscription(g *group, sd *subscriptionData) {
	if sd.removed {
		delete(g.subs, sd.topic)
	} else {
		g.subs[sd.topic] = sd
	}
	s.recordSubscription(g.name, sd)
}

func (s *state) group(name string) *group {
	g := s.groups[name]
	if g == nil {
		g = &group{name: name, clients: map[*conn]*groupClient{}, subs: map[string]*subscriptionData{}}
		s.groups[name] = g
	}
	return g
}

// removeConn drops the client on c; it reports whether there was one.
func (g *group) removeConn(c *conn) bool {
	if _, ok := g.clients[c]; !ok {
		return false
	}
	delete(g.clients, c)
	return true
}

// clientIDs lists the group's client ids, sorted.
func (g *group) clientIDs() []string {
	seen := map[string]bool{}
	for _, gc := range g.clients {
		seen[gc.clientID] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// notifyGroup sends NOTIFY_CONSUMER_IDS_CHANGED to every client of the group
// (Broker2Client.notifyConsumerIdsChanged), one-way.
func (s *state) notifyGroup(name string) {
	g := s.groups[name]
	if g == nil {
		return
	}
	for c := range g.clients {
		s.opaque++
		c.send(outFrame{cmd: &Command{
			Code:          CodeNotifyConsumerIDs,
			Language:      "JAVA",
			Version:       brokerVersion,
			Opaque:        s.opaque,
			Flag:          flagOneway,
			ExtFields:     map[string]string{"consumerGroup": name},
			Serialization: c.ser,
		}})
	}
}

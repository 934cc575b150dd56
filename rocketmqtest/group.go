package rocketmqtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// validGroup checks a consumer group name before the broker creates topics
// named after it: %RETRY% is the longer prefix, so %RETRY%group must fit in
// the 127 bytes of a topic name.
func validGroup(name string) error {
	if name == "" {
		return errors.New("missing consumer group")
	}
	if n := len(retryTopicPrefix + name); n > 127 {
		return fmt.Errorf("consumer group %.20q... too long: %s%%group is %d bytes, more than 127", name, retryTopicPrefix, n)
	}
	return nil
}

// group is a consumer group as ConsumerGroupInfo keeps it: the clients that
// sent heartbeats for it, by connection, and the subscriptions they declared.
//
// Deviations from the Java broker, on purpose, so that tests which restart the
// broker or close its connections see clients carry on at once instead of
// stalling until their next heartbeat (every 30 s with rocketmq-client-go):
//   - a group's subscriptions outlive its last client (the Java broker forgets
//     the group), so pulls do not fail with SUBSCRIPTION_NOT_EXIST;
//   - clients whose connection the broker itself closed (Restart,
//     CloseClientConnections) stay members, "away", until they heartbeat on a
//     new connection or the reconnect grace passes (WithReconnectGrace), so a
//     rebalance in between does not take all queues from them.
type group struct {
	name             string
	clients          map[*conn]*groupClient
	away             map[string]time.Time // client id -> end of its grace
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
		g = &group{name: name, clients: map[*conn]*groupClient{}, away: map[string]time.Time{}, subs: map[string]*subscriptionData{}}
		s.groups[name] = g
	}
	return g
}

// knowGroup adds a group to the subscription-group table, as the Java
// broker's SubscriptionGroupManager.findSubscriptionGroupConfig does for a
// group it meets in a heartbeat, pull or send-back (autoCreateSubscriptionGroup,
// on by default), and logs it for WithDataDir.
func (s *state) knowGroup(name string) {
	if !s.knownGroups[name] {
		s.knownGroups[name] = true
		s.recordKnownGroup(name)
	}
}

// removeConn drops the client on c; it reports whether there was one.
func (g *group) removeConn(c *conn) bool {
	if _, ok := g.clients[c]; !ok {
		return false
	}
	delete(g.clients, c)
	return true
}

// clientIDs lists the group's client ids, away ones included, sorted.
func (g *group) clientIDs() []string {
	seen := map[string]bool{}
	for _, gc := range g.clients {
		seen[gc.clientID] = true
	}
	for id := range g.away {
		seen[id] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// sendAway marks the clients on c as away, for connections the broker closes.
func (s *state) sendAway(c *conn) {
	until := time.Now().Add(s.cfg.reconnectGrace)
	for name, g := range s.groups {
		gc, ok := g.clients[c]
		if !ok {
			continue
		}
		delete(g.clients, c)
		g.away[gc.clientID] = until
		s.after(s.cfg.reconnectGrace, func() { s.expireAway(name) })
	}
}

// expireAway drops the group's away clients whose grace passed, and tells the
// others.
func (s *state) expireAway(name string) {
	g := s.groups[name]
	if g == nil {
		return
	}
	now := time.Now()
	changed := false
	for id, until := range g.away {
		if !until.After(now) {
			delete(g.away, id)
			changed = true
		}
	}
	if changed {
		s.notifyGroup(name)
	}
}

// notifyGroup sends NOTIFY_CONSUMER_IDS_CHANGED to every client of the group
// (Broker2Client.notifyConsumerIdsChanged), one-way.
func (s *state) notifyGroup(name string) {
	g := s.groups[name]
	if g == nil {
		return
	}
	for c := range g.clients {
		s.sendToClient(c, CodeNotifyConsumerIDs, map[string]string{"consumerGroup": name}, nil)
	}
}

// sendToClient sends a one-way request from the broker to a client
// (Broker2Client), in the serialization the client uses.
func (s *state) sendToClient(c *conn, code int16, ext map[string]string, body []byte) {
	s.opaque++
	f := outFrame{cmd: &Command{
		Code:          code,
		Language:      "JAVA",
		Version:       brokerVersion,
		Opaque:        s.opaque,
		Flag:          flagOneway,
		ExtFields:     ext,
		Serialization: JSON, // as every command the Java broker creates
	}}
	if body != nil {
		f.body = [][]byte{body}
	}
	c.send(f)
}

package rocketmqtest

import (
	"encoding/json"
	"time"
)

// LOCK_BATCH_MQ (41), as RebalanceLockManager.tryLockBatch: each requested
// queue is locked to the requesting client id when it is free, already the
// client's, or its lock expired (WithLockExpiry, default 60 s); the response
// lists the queues the client now holds, as {"lockOKMQSet":[...]}. Locks are
// not released when a connection closes — they expire — as in the Java
// broker.

func init() { handlers[CodeLockBatchMQ] = handleLockBatchMQ }

type lockBatchBody struct {
	ConsumerGroup string         `json:"consumerGroup"`
	ClientID      string         `json:"clientId"`
	MQSet         []messageQueue `json:"mqSet"`
}

// messageQueue is MessageQueue in JSON bodies.
type messageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

type queueLock struct {
	clientID string
	renewed  time.Time
}

func handleLockBatchMQ(s *state, in *inbound) *Command {
	var req lockBatchBody
	if err := json.Unmarshal(in.cmd.Body, &req); err != nil {
		return respond(codeSystemError, "bad lock body: "+err.Error())
	}
	locks := s.locks[req.ConsumerGroup]
	if locks == nil {
		locks = map[queueKey]*queueLock{}
		s.locks[req.ConsumerGroup] = locks
	}
	now := time.Now()
	ok := []messageQueue{}
	for _, mq := range req.MQSet {
		k := queueKey{mq.Topic, mq.QueueID}
		l := locks[k]
		if l == nil || l.clientID == req.ClientID || now.Sub(l.renewed) > s.cfg.lockExpiry {
			locks[k] = &queueLock{clientID: req.ClientID, renewed: now}
			ok = append(ok, mq)
		}
	}
	body, _ := json.Marshal(struct {
		LockOKMQSet []messageQueue `json:"lockOKMQSet"`
	}{ok})
	return &Command{Code: codeSuccess, Body: body}
}

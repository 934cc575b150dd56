package rocketmqtest

import "encoding/json"

// UNLOCK_BATCH_MQ (42), as RebalanceLockManager.unlockBatch: releases the
// requested queues the client holds; others' locks are left alone.

func init() { handlers[CodeUnlockBatchMQ] = handleUnlockBatchMQ }

func handleUnlockBatchMQ(s *state, in *inbound) *Command {
	var req lockBatchBody
	if err := json.Unmarshal(in.cmd.Body, &req); err != nil {
		return respond(codeSystemError, "bad unlock body: "+err.Error())
	}
	locks := s.locks[req.ConsumerGroup]
	for _, mq := range req.MQSet {
		k := queueKey{mq.Topic, mq.QueueID}
		if l := locks[k]; l != nil && l.clientID == req.ClientID {
			delete(locks, k)
		}
	}
	return success()
}

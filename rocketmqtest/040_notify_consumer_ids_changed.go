// NOTIFY_CONSUMER_IDS_CHANGED (40) is sent by the broker to every client of a
// consumer group, one-way, when a client joins (heartbeat), leaves
// (UNREGISTER_CLIENT or a closed connection) or the group's subscribed topics
// change; rocketmq-client-go rebalances at once. The sender is
// state.notifyGroup in group.go. A client sending this code to the broker
// gets REQUEST_CODE_NOT_SUPPORTED, as from the Java broker.

package rocketmqtest

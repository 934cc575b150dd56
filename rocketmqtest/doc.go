// Package rocketmqtest runs an Apache RocketMQ name server and broker in
// process, for tests: what net/http/httptest is for HTTP servers and franz-go's
// kfake for Kafka.
//
// The broker speaks the real remoting protocol over TCP (JSON and binary
// ROCKETMQ headers), so the unmodified rocketmq-client-go v2 Producer and
// PushConsumer (and any other remoting client) connect to it as to a real
// cluster: pass [Broker.Addr] as the name server address. One listener
// answers both name-server and broker requests.
//
// It behaves like the Java broker (Apache RocketMQ 4.9, the generation
// rocketmq-client-go v2 targets) for the requests a client uses: sending
// (single, batch, delayed), pulling with long polling and tag filtering,
// consumer offsets, heartbeats and rebalance notifications, send-back to
// %RETRY%group with delay levels and %DLQ%group after the maximum reconsume
// count, and queue locks for orderly consumers. Stored messages are encoded
// byte for byte as the Java commit log encodes them, so MsgId, OffsetMsgId,
// offsets, hosts and properties are what a client sees from a real broker.
// Everything is kept in memory unless [WithDataDir]; nothing is ever deleted.
//
// Tests drive failures a real deployment has through fault helpers
// ([Broker.DropOffsetCommits], [Broker.DuplicateSends], [Broker.RejectSendBacks],
// [Broker.DelayResponses], [Broker.CloseClientConnections], [Broker.Restart],
// [Broker.RewindOffsets], ...) or, for anything else, [Broker.ControlKey],
// which intercepts requests by code. Introspection ([Broker.Messages],
// [Broker.CommittedOffset], [Broker.Clients]) lets them assert outcomes.
//
// Delay levels (1s 5s 10s ... 2h) are scaled by [WithDelayScale]: with
// WithDelayScale(time.Millisecond) a send-back retry arrives after
// milliseconds instead of seconds.
//
// The command rocketmqtest in cmd/rocketmqtest runs a broker standalone for
// multi-process tests. docs/rocketmqtest.md lists the implemented request
// codes, the behaviour of each fault and the features left out.
package rocketmqtest

// Package chaos holds the chaos test of exactly-once consumption on a real
// Apache RocketMQ: a broker of the test's own killed with SIGKILL and
// restarted on its store, and consumer processes killed and restarted,
// while a producer sends; every message must be applied exactly once to
// MariaDB. It has no code outside its tests; see chaos_test.go and
// docs/apache-rocketmq.md.
package chaos

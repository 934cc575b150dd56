package rocketmqtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"
)

// Option configures a Broker. Options are sealed: only this package defines them.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	addr              string
	brokerName        string
	defaultQueues     int
	autoCreateTopics  bool
	delayScale        time.Duration
	delayLevels       []time.Duration
	maxReconsumeTimes int
	lockExpiry        time.Duration
	logger            *slog.Logger
	debug             bool // logger enabled at debug level: log every request
	topics            map[string]int
	dataDir           string
	reconnectGrace    time.Duration
}

// defaultDelayLevels is messageDelayLevel of the Java broker:
// "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
var defaultDelayLevels = []time.Duration{
	1 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	1 * time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 1 * time.Hour, 2 * time.Hour,
}

func defaultConfig() config {
	return config{
		addr:              "127.0.0.1:0",
		brokerName:        "broker-a",
		defaultQueues:     4,
		autoCreateTopics:  true,
		delayScale:        time.Second,
		delayLevels:       defaultDelayLevels,
		maxReconsumeTimes: 16,
		lockExpiry:        60 * time.Second,
		reconnectGrace:    40 * time.Second,
		logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		topics:            map[string]int{},
	}
}

// WithAddr sets the listen address. Default "127.0.0.1:0" (a free loopback port).
func WithAddr(addr string) Option { return optionFunc(func(c *config) { c.addr = addr }) }

// WithBrokerName sets the broker name reported in routes and message queues.
// Default "broker-a".
func WithBrokerName(name string) Option {
	return optionFunc(func(c *config) { c.brokerName = name })
}

// WithDefaultQueues sets the read and write queue count of auto-created
// topics. Default 4; n < 1 makes [New] fail. Retry and DLQ topics always have
// 1 queue, as in the Java broker.
func WithDefaultQueues(n int) Option {
	return optionFunc(func(c *config) { c.defaultQueues = n })
}

// WithAutoCreateTopics controls whether unknown topics are created on first
// use (route lookup or send), as a broker with autoCreateTopicEnable=true does.
// Default true. When false, unknown topics get TOPIC_NOT_EXIST; create them
// with [Broker.CreateTopic] or [WithTopic].
func WithAutoCreateTopics(enabled bool) Option {
	return optionFunc(func(c *config) { c.autoCreateTopics = enabled })
}

// WithTopic creates a topic with the given queue count at start; an empty
// name or queues < 1 makes [New] fail. Default: no topics besides TBW102.
func WithTopic(name string, queues int) Option {
	return optionFunc(func(c *config) { c.topics[name] = queues })
}

// WithDelayScale sets what one second of a delay level lasts, for delayed
// messages and send-back retries: WithDelayScale(time.Millisecond) makes the
// 10 s level take 10 ms, and 0 delivers them at once. Default time.Second
// (real time); a negative perSecond makes [New] fail.
func WithDelayScale(perSecond time.Duration) Option {
	return optionFunc(func(c *config) { c.delayScale = perSecond })
}

// WithDelayLevels replaces the delay levels (level 1 is the first). Default
// the Java broker's 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h.
// The durations are still multiplied by the delay scale.
func WithDelayLevels(levels ...time.Duration) Option {
	return optionFunc(func(c *config) {
		if len(levels) > 0 {
			c.delayLevels = append([]time.Duration(nil), levels...)
		}
	})
}

// WithMaxReconsumeTimes sets the subscription groups' retryMaxTimes: the
// reconsume count after which a sent-back message goes to %DLQ%group. It
// applies when the send-back request carries no maxReconsumeTimes of its own
// (rocketmq-client-go always sends one: its WithMaxReconsumeTimes, default 16).
// Default 16; a negative n makes [New] fail.
func WithMaxReconsumeTimes(n int) Option {
	return optionFunc(func(c *config) { c.maxReconsumeTimes = n })
}

// WithLockExpiry sets how long an orderly consumer's queue lock lives without
// renewal (rocketmq.broker.rebalance.lockMaxLiveTime). Default 60 s; a
// negative d makes [New] fail.
func WithLockExpiry(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lockExpiry = d })
}

// WithLogger sets the logger for connections and, at debug level, every
// request and fault hit. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
			c.debug = l.Enabled(context.Background(), slog.LevelDebug)
		}
	})
}

// WithDataDir keeps topics, messages, committed offsets, pending delayed
// messages, consumer groups' subscriptions and the groups whose offset
// commits the broker takes (those it met) in an append-only log in dir,
// replayed when a broker starts with the same dir: a broker process killed
// and started again has what it had.
// Each change is written as it happens (no fsync). Default: memory only.
func WithDataDir(dir string) Option { return optionFunc(func(c *config) { c.dataDir = dir }) }

// WithReconnectGrace sets how long a consumer whose connection the broker
// closed (Restart, CloseClientConnections) stays a member of its groups
// without a heartbeat on a new connection: long enough for
// rocketmq-client-go's 30 s heartbeat, so a rebalance meanwhile keeps its
// queues. When it passes, the client leaves and the group is notified. The
// Java broker, which loses its state on restart, has no such grace.
// Default 40 s; 0 for none; a negative d makes [New] fail.
func WithReconnectGrace(d time.Duration) Option {
	return optionFunc(func(c *config) { c.reconnectGrace = d })
}

// validate reports the options New refuses.
func (c *config) validate() error {
	if c.defaultQueues < 1 {
		return fmt.Errorf("rocketmqtest: WithDefaultQueues(%d): fewer than 1 queue", c.defaultQueues)
	}
	if _, ok := c.topics[""]; ok {
		return errors.New("rocketmqtest: WithTopic: empty topic name")
	}
	// Sorted, so that the same options always report the same topic.
	for _, name := range slices.Sorted(maps.Keys(c.topics)) {
		if n := c.topics[name]; n < 1 {
			return fmt.Errorf("rocketmqtest: WithTopic(%q, %d): fewer than 1 queue", name, n)
		}
	}
	if c.delayScale < 0 {
		return fmt.Errorf("rocketmqtest: WithDelayScale(%v): negative", c.delayScale)
	}
	if c.maxReconsumeTimes < 0 || c.maxReconsumeTimes > math.MaxInt32 {
		return fmt.Errorf("rocketmqtest: WithMaxReconsumeTimes(%d): outside 0..%d (a Java int)", c.maxReconsumeTimes, math.MaxInt32)
	}
	if c.lockExpiry < 0 {
		return fmt.Errorf("rocketmqtest: WithLockExpiry(%v): negative", c.lockExpiry)
	}
	if c.reconnectGrace < 0 {
		return fmt.Errorf("rocketmqtest: WithReconnectGrace(%v): negative", c.reconnectGrace)
	}
	return nil
}

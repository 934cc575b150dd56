package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// sendBack makes a Consumer's concurrent listeners send their failed
// messages back to the retry topic themselves, checking the broker's answer,
// instead of returning ConsumeRetryLater to the client.
//
// rocketmq-client-go v2.1.2 ignores the response code of its
// CONSUMER_SEND_MSG_BACK (upstream #1106): a send-back the broker refuses
// (SYSTEM_ERROR, a busy or read-only store, ...) counts as done, the message
// is removed from its process queue and its offset committed, so it is never
// delivered again. Here a failed message is acknowledged to the client only
// once the broker has answered SUCCESS to its send-back, i.e. stored it in
// %RETRY%group (or the DLQ, past the maximum): the same request the client
// sends, so delays, reconsume times and dead-lettering are the broker's as
// before. A send-back that is refused or unanswered keeps the message here:
// it is run again after sendBackPause (like the client's own re-run after a
// send-back that fails on the network) and sent back again if it fails
// again, until it is applied, sent back, or the consumer shuts down (then it
// is held, not acknowledged, and redelivered from the committed offset).
type sendBack struct {
	// maxReconsumeTimes is the client's, sent with each send-back as the
	// client does, since the broker's default for the group may differ.
	maxReconsumeTimes int32
	// orderlyMax is the client's maximum for an orderly consumer, which
	// dead-letters a message whose ReconsumeTimes (its suspensions so far)
	// exceeds it: WithMaxReconsumeTimes, math.MaxInt32 (never) by default.
	orderlyMax int32
	// brokerAddr returns the master address of the named broker from the
	// client's route, "" when the route has none.
	brokerAddr func(brokerName string) string
	// call sends one request to addr and returns the broker's response.
	call func(ctx context.Context, addr string, code int, ext map[string]string) (*remoting.Response, error)
}

// sendBackTimeout bounds one send-back, as the client's own (3 s).
const sendBackTimeout = 3 * time.Second

// sendBackPause is the wait before a message whose send-back failed is run
// again: the broker refused to store it, so give it time.
const sendBackPause = time.Second

// newSendBack returns the send-back of the listeners of the push consumer
// that client returns, or nil when it keeps its own: a client whose options
// this package cannot read, a broadcasting one (no retry topic), or one with
// ACL credentials, which the send-back here does not sign. client is called
// again for each send-back's route lookup: a Consumer replaces a client
// whose start failed by one with the same options.
//
// The options are read with reflection, since the client exports no getter:
// pc.option.MaxReconsumeTimes, ConsumerModel and ClientOptions.Credentials,
// the same in v2.1.2 and the newest commit; TestSendBackReadsClientOptions
// notices a change.
func newSendBack(client func() any) *sendBack {
	v := reflect.ValueOf(client())
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	opt := v.Elem().FieldByName("option")
	if !opt.IsValid() || opt.Kind() != reflect.Struct {
		return nil
	}
	maxTimes := opt.FieldByName("MaxReconsumeTimes")
	model := opt.FieldByName("ConsumerModel")
	ak := opt.FieldByName("ClientOptions").FieldByName("Credentials").FieldByName("AccessKey")
	if maxTimes.Kind() != reflect.Int32 || model.Kind() != reflect.Int || ak.Kind() != reflect.String {
		return nil
	}
	if consumer.MessageModel(model.Int()) != consumer.Clustering || ak.String() != "" {
		return nil
	}
	// A TLS client (the newer client's WithTls): the send-back here dials
	// plain TCP, and would fail every time.
	if rc := opt.FieldByName("ClientOptions").FieldByName("RemotingClientConfig"); rc.Kind() == reflect.Pointer && !rc.IsNil() {
		if tls := rc.Elem().FieldByName("UseTls"); tls.Kind() == reflect.Bool && tls.Bool() {
			return nil
		}
	}
	n, orderlyMax := int32(maxTimes.Int()), int32(maxTimes.Int())
	if n == -1 {
		// The client's defaults, see getMaxReconsumeTimes and
		// getOrderlyMaxReconsumeTimes.
		n, orderlyMax = 16, math.MaxInt32
	}
	return &sendBack{
		maxReconsumeTimes: n,
		orderlyMax:        orderlyMax,
		brokerAddr:        func(name string) string { return masterAddr(client(), name) },
		call: func(ctx context.Context, addr string, code int, ext map[string]string) (*remoting.Response, error) {
			return remoting.Call(ctx, addr, code, ext, nil)
		},
	}
}

// masterAddr returns the address of the master of the named broker in the
// route table of pc, a rocketmq-client-go push consumer, as the client's
// own send-back finds it (pc.defaultConsumer.client.GetNameSrv().
// FindBrokerAddrByName, the same in v2.1.2 and the newest commit); "" when
// the table has none, or pc is not such a client.
//
// Both methods are on types internal to the client, reached through
// unexported fields: reflect calls a method of a value read from an
// unexported field only when the value is read through its address, hence
// reflect.NewAt.
func masterAddr(pc any, brokerName string) string {
	v := reflect.ValueOf(pc)
	if brokerName == "" || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return ""
	}
	dc := v.Elem().FieldByName("defaultConsumer")
	if dc.Kind() != reflect.Pointer || dc.IsNil() || dc.Elem().Kind() != reflect.Struct {
		return ""
	}
	client := dc.Elem().FieldByName("client")
	if client.Kind() != reflect.Interface || client.IsNil() {
		return ""
	}
	client = reflect.NewAt(client.Type(), unsafe.Pointer(client.UnsafeAddr())).Elem()
	getNameSrv := client.MethodByName("GetNameSrv")
	if !getNameSrv.IsValid() || getNameSrv.Type().NumIn() != 0 || getNameSrv.Type().NumOut() != 1 {
		return ""
	}
	ns := getNameSrv.Call(nil)[0]
	if ns.Kind() == reflect.Interface && ns.IsNil() {
		return ""
	}
	find := ns.MethodByName("FindBrokerAddrByName")
	if !find.IsValid() || find.Type() != reflect.TypeFor[func(string) string]() {
		return ""
	}
	return find.Call([]reflect.Value{reflect.ValueOf(brokerName)})[0].String()
}

// The delay levels of a send-back: the broker's next retry delay, or the
// dead-letter queue at once.
const (
	delayRetry      = 0
	delayDeadLetter = -1
)

// errNotSentBack wraps the failure of a send-back.
var errNotSentBack = errors.New("exactlyonce: send-back to the retry topic failed")

// send sends m, pulled from queue, back to its broker, for group (the
// client's name for it, namespace included), with delay level 0 (the
// broker's 3+ReconsumeTimes) or, to dead-letter it, -1, as the client's
// send-backs do, and to the address its concurrent send-back uses:
// the master address of the queue's broker in the client's route, not the
// address the message was stored at (MessageExt.StoreHost), which a broker
// that moved to another address with its store no longer answers on.
// StoreHost is used only when the route has no address for the broker.
func (s *sendBack) send(ctx context.Context, group string, m *primitive.MessageExt, queue *primitive.MessageQueue, delayLevel int) error {
	ctx, cancel := context.WithTimeout(ctx, sendBackTimeout)
	defer cancel()
	ext := map[string]string{
		"group":             group,
		"originTopic":       m.Topic,
		"offset":            strconv.FormatInt(m.CommitLogOffset, 10),
		"delayLevel":        strconv.Itoa(delayLevel),
		"originMsgId":       m.MsgId,
		"maxReconsumeTimes": strconv.Itoa(int(s.maxReconsumeTimes)),
	}
	addr := s.addr(m, queue)
	r, err := s.call(ctx, addr, remoting.ConsumerSendMsgBack, ext)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: %w", errNotSentBack, addr, err)
	case r.Code != remoting.Success:
		return fmt.Errorf("%w: %s answered code %d (%s)", errNotSentBack, addr, r.Code, r.Remark)
	}
	return nil
}

// addr returns the address to send m back to: its queue's broker master
// from the route, else its store host.
func (s *sendBack) addr(m *primitive.MessageExt, queue *primitive.MessageQueue) string {
	if m.Queue != nil {
		queue = m.Queue
	}
	if queue != nil && s.brokerAddr != nil {
		if a := s.brokerAddr(queue.BrokerName); a != "" {
			return a
		}
	}
	return m.StoreHost
}

// failure is a message of a delivery that was not acknowledged, and why.
type failure struct {
	m   *primitive.MessageExt
	err error
}

// resolve sends the failed messages of a concurrent delivery back and runs
// those it could not send back again (see sendBack) until none is left, and
// returns what is left when the consumer starts shutting down, with
// shutdown set.
func (l *listener) resolve(ctx context.Context, group string, fails []failure, labels func(*primitive.MessageExt) Labels, process processFunc) ([]failure, bool) {
	clientGroup := clientGroupOf(ctx, group)
	for {
		var left []*primitive.MessageExt
		for _, f := range fails {
			if f.m == nil {
				continue // nothing to send back, nothing to lose
			}
			if l.cfg.gate.draining() {
				left = append(left, f.m) // held below, not sent: shutdown must not wait for sends
				continue
			}
			if err := l.cfg.sendBack.send(ctx, clientGroup, f.m, queueFromContext(ctx), delayRetry); err != nil {
				l.log(ctx, slog.LevelWarn, "exactlyonce: send-back failed, running the message again", f.m,
					deliveryOf(group, "", f.m, queueFromContext(ctx)), slog.Any("error", err), slog.Any("cause", f.err))
				left = append(left, f.m)
			}
		}
		if len(left) == 0 {
			return nil, false
		}
		time.Sleep(sendBackPause)
		if l.cfg.gate.draining() {
			l.notRun(left, labels)
			return []failure{{err: fmt.Errorf("%w before the message could be sent back", ErrShutdown)}}, true
		}
		// The client stamped the consume start once; a concurrent consumer's
		// cleanExpiredMsg sends back (unchecked, on v2.1.2) and drops a
		// message older than ConsumeTimeout, so a long refusal must not age
		// it: restamp, as the client's own retry path does.
		now := strconv.FormatInt(time.Now().UnixMilli(), 10)
		for _, m := range left {
			m.WithProperty(primitive.PropertyConsumeStartTime, now)
		}
		var shutdown bool
		if fails, shutdown = process(ctx, group, left, labels, false); shutdown || len(fails) == 0 {
			return fails, shutdown
		}
	}
}

// clientGroupOf returns the client's name for group (namespace included),
// which send-backs carry, as the client's own do.
func clientGroupOf(ctx context.Context, group string) string {
	if mc, ok := primitive.GetConsumerCtx(ctx); ok && mc != nil && mc.ConsumerGroup != "" {
		return mc.ConsumerGroup
	}
	return group
}

// deadLetterMark is the property by which an orderly listener marks a
// message it dead-lettered. The client keeps the same *MessageExt in its
// process queue until the queue's offset passes it, and puts it back with
// its batch when a later message of the batch fails: the mark keeps it from
// being run (and dead-lettered) again. It never leaves the process.
const deadLetterMark = "EXACTLYONCE_DEAD_LETTERED"

// deadLetter handles the failure of an orderly delivery (process ran msgs
// and returned fails) when the failed message is past the client's
// maximum: v2.1.2's orderly consumer would send it to the DLQ with an
// unchecked send-back (upstream #1106), losing it when the broker refuses.
// Here the send-back is checked: once the broker has stored the message in
// %DLQ%group, it is marked (deadLetterMark) and the rest of the delivery
// is processed, as the client would go on with the queue; a refused
// dead-lettering leaves the failure, and the queue is suspended.
//
// It returns the failures left, whether it stopped for a shutdown, and the
// message whose failure counts against the maximum (see orderlyCounts): nil
// when none failed by itself.
func (l *listener) deadLetter(ctx context.Context, group string, msgs []*primitive.MessageExt, fails []failure, labels func(*primitive.MessageExt) Labels, process processFunc) ([]failure, bool, *primitive.MessageExt) {
	s := l.cfg.sendBack
	for {
		i := slices.IndexFunc(fails, func(f failure) bool { return f.m != nil && f.err != nil })
		if i < 0 {
			return fails, false, nil
		}
		m := fails[i].m
		if m.ReconsumeTimes <= s.orderlyMax {
			return fails, false, m
		}
		if l.cfg.gate.draining() {
			return fails, true, nil
		}
		d := deliveryOf(group, "", m, queueFromContext(ctx))
		if err := s.send(ctx, clientGroupOf(ctx, group), m, queueFromContext(ctx), delayDeadLetter); err != nil {
			l.log(ctx, slog.LevelWarn, "exactlyonce: past the maximum reconsume times, but the dead-letter queue refused the message; suspending the queue", m, d,
				slog.Any("error", err), slog.Any("cause", fails[i].err))
			return fails, false, m
		}
		m.WithProperty(deadLetterMark, "true")
		l.log(ctx, slog.LevelError, "exactlyonce: past the maximum reconsume times, sent to the dead-letter queue", m, d,
			slog.Int("maxReconsumeTimes", int(s.orderlyMax)), slog.Any("cause", fails[i].err))
		rest := msgs[slices.Index(msgs, m)+1:]
		if len(rest) == 0 {
			return nil, false, nil
		}
		var shutdown bool
		if fails, shutdown = process(ctx, group, rest, labels, true); shutdown || len(fails) == 0 {
			return fails, shutdown, nil
		}
		msgs = rest
	}
}

// notDeadLettered returns the messages of msgs that deadLetter has not
// marked.
func notDeadLettered(msgs []*primitive.MessageExt) []*primitive.MessageExt {
	return slices.DeleteFunc(slices.Clone(msgs), func(m *primitive.MessageExt) bool {
		return m != nil && m.GetProperty(deadLetterMark) != ""
	})
}

// orderlyCounts prepares the messages of an orderly delivery about to be
// suspended for the client's checkReconsumeTimes, which then adds one to
// the ReconsumeTimes of every message of the batch, and dead-letters one
// already past the maximum with its unchecked send-back instead. So that
// only deadLetter dead-letters, and only failed's own failures count:
// failed (nil: none) keeps its count, held at the maximum when deadLetter
// could not dead-letter it (so that its next failure tries again); every
// other message (not run, applied before failed, marked) is lowered by
// one, which the client's increment undoes, and to the maximum at most.
func (s *sendBack) orderlyCounts(msgs []*primitive.MessageExt, failed *primitive.MessageExt) {
	for _, m := range msgs {
		switch {
		case m == nil:
		case m != failed:
			m.ReconsumeTimes = min(m.ReconsumeTimes-1, s.orderlyMax)
		case m.ReconsumeTimes > s.orderlyMax:
			m.ReconsumeTimes = s.orderlyMax
		}
	}
}

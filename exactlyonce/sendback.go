package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"time"

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
	// call sends one request to addr and returns the broker's response.
	call func(ctx context.Context, addr string, code int, ext map[string]string) (*remoting.Response, error)
}

// sendBackTimeout bounds one send-back, as the client's own (3 s).
const sendBackTimeout = 3 * time.Second

// sendBackPause is the wait before a message whose send-back failed is run
// again: the broker refused to store it, so give it time.
const sendBackPause = time.Second

// newSendBack returns the send-back of the listeners of pc, or nil when pc
// keeps its own: a client whose options this package cannot read, a
// broadcasting one (no retry topic), or one with ACL credentials, which the
// send-back here does not sign.
//
// The options are read with reflection, since the client exports no getter:
// pc.option.MaxReconsumeTimes, ConsumerModel and ClientOptions.Credentials,
// the same in v2.1.2 and the newest commit; TestSendBackReadsClientOptions
// notices a change.
func newSendBack(pc any) *sendBack {
	v := reflect.ValueOf(pc)
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
	n := int32(maxTimes.Int())
	if n == -1 {
		n = 16 // the client's default, see getMaxReconsumeTimes
	}
	return &sendBack{maxReconsumeTimes: n, call: func(ctx context.Context, addr string, code int, ext map[string]string) (*remoting.Response, error) {
		return remoting.Call(ctx, addr, code, ext, nil)
	}}
}

// errNotSentBack wraps the failure of a send-back.
var errNotSentBack = errors.New("exactlyonce: send-back to the retry topic failed")

// send sends m back to the broker that stored it, for group (the client's
// name for it, namespace included), with delay level 0 (the broker's
// 3+ReconsumeTimes), as the client's sendMessageBack does.
func (s *sendBack) send(ctx context.Context, group string, m *primitive.MessageExt) error {
	ctx, cancel := context.WithTimeout(ctx, sendBackTimeout)
	defer cancel()
	ext := map[string]string{
		"group":             group,
		"originTopic":       m.Topic,
		"offset":            strconv.FormatInt(m.CommitLogOffset, 10),
		"delayLevel":        "0",
		"originMsgId":       m.MsgId,
		"maxReconsumeTimes": strconv.Itoa(int(s.maxReconsumeTimes)),
	}
	r, err := s.call(ctx, m.StoreHost, remoting.ConsumerSendMsgBack, ext)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: %w", errNotSentBack, m.StoreHost, err)
	case r.Code != remoting.Success:
		return fmt.Errorf("%w: %s answered code %d (%s)", errNotSentBack, m.StoreHost, r.Code, r.Remark)
	}
	return nil
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
	clientGroup := group
	if mc, ok := primitive.GetConsumerCtx(ctx); ok && mc != nil && mc.ConsumerGroup != "" {
		clientGroup = mc.ConsumerGroup
	}
	for {
		var left []*primitive.MessageExt
		for _, f := range fails {
			if f.m == nil {
				continue // nothing to send back, nothing to lose
			}
			if err := l.cfg.sendBack.send(ctx, clientGroup, f.m); err != nil {
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
		var shutdown bool
		if fails, shutdown = process(ctx, group, left, labels, false); shutdown || len(fails) == 0 {
			return fails, shutdown
		}
	}
}

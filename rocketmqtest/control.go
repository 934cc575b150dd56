package rocketmqtest

import (
	"slices"
	"time"
)

// control is a function installed with ControlKey.
type control struct {
	code int16
	fn   func(*Command) (*Command, error, bool)
}

// ControlKey installs fn to intercept requests with the given code (AnyCode
// for every request), in the style of franz-go's kfake. Controls run on the
// broker's run loop, in installation order, before the request is handled.
//
// fn returns handled=false to let the broker handle the request as usual;
// the control stays installed. When it returns handled=true the control is
// removed (one-shot) unless fn called [Broker.KeepControl], and:
//   - err != nil closes the client's connection without a response;
//   - resp == nil sends no response (the client times out);
//   - otherwise resp is sent as the response, as the broker sends its own:
//     Opaque is set from the request, Serialization to JSON, Version to the
//     broker's version, and the response bit is added to resp's Flag (a
//     one-way request gets a response too); the DropResponses and
//     DelayResponses faults for the request's code apply to it.
//
// fn must not call Broker methods other than KeepControl: the run loop is
// busy running it.
func (b *Broker) ControlKey(code int16, fn func(req *Command) (resp *Command, err error, handled bool)) {
	b.do(func(s *state) { s.controls = append(s.controls, &control{code: code, fn: fn}) })
}

// KeepControl, called from inside a control function, keeps that control
// installed although it handled the request.
func (b *Broker) KeepControl() { b.keepControl.Store(true) }

// runControls reports whether a control handled the request.
func (s *state) runControls(in *inbound) bool {
	for i, c := range s.controls {
		if c.code != AnyCode && c.code != in.cmd.Code {
			continue
		}
		s.b.keepControl.Store(false)
		resp, err, handled := c.fn(in.cmd)
		if !handled {
			continue
		}
		if !s.b.keepControl.Load() {
			s.controls = slices.Delete(s.controls, i, i+1)
		}
		switch {
		case err != nil:
			s.cfg.logger.Info("rocketmqtest: control closes connection", "code", in.cmd.Code, "err", err)
			in.c.close()
		case resp != nil:
			s.write(in, resp)
		}
		return true
	}
	return false
}

// Fault is an installed fault, returned by the fault helpers. It stays
// installed until Remove.
type Fault struct {
	b *Broker
	f *fault // owned by the state goroutine: read it through b.do
}

type faultKind int

const (
	faultDropCommit faultKind = iota
	faultDelayCommit
	faultFailSendBack
	faultRejectSendBack
	faultDuplicateSend
	faultDelayResponse
	faultDropResponse
)

// faultNames are the helpers that install each kind, for the log.
var faultNames = [...]string{
	faultDropCommit:     "DropOffsetCommits",
	faultDelayCommit:    "DelayOffsetCommits",
	faultFailSendBack:   "FailSendBacks",
	faultRejectSendBack: "RejectSendBacks",
	faultDuplicateSend:  "DuplicateSends",
	faultDelayResponse:  "DelayResponses",
	faultDropResponse:   "DropResponses",
}

func (k faultKind) String() string { return faultNames[k] }

type fault struct {
	kind faultKind
	code int16
	d    time.Duration
	hits int
}

// Remove uninstalls the fault. Removing twice is harmless.
func (f *Fault) Remove() {
	f.b.do(func(s *state) {
		s.faults = slices.DeleteFunc(s.faults, func(x *fault) bool { return x == f.f })
	})
}

// Hits returns how many requests the fault has affected, also after Remove.
func (f *Fault) Hits() int {
	n := 0
	f.b.do(func(*state) { n = f.f.hits })
	return n
}

func (b *Broker) addFault(kind faultKind, code int16, d time.Duration) *Fault {
	f := &Fault{b: b, f: &fault{kind: kind, code: code, d: d}}
	b.do(func(s *state) { s.faults = append(s.faults, f.f) })
	return f
}

// fault returns the first installed fault of the kind matching the code and
// counts and logs a hit, or nil.
func (s *state) fault(kind faultKind, code int16) *fault {
	for _, f := range s.faults {
		if f.kind == kind && (f.code == AnyCode || f.code == code) {
			f.hits++
			s.cfg.logger.Debug("rocketmqtest: fault hit", "fault", f.kind, "code", code)
			return f
		}
	}
	return nil
}

// DropOffsetCommits makes the broker ignore consumer offset commits: both
// UPDATE_CONSUMER_OFFSET and the commit offset carried by PULL_MESSAGE. A
// consumer that restarts, or a queue that moves to another consumer, then
// resumes from the last offset committed before the fault: the messages
// consumed since are delivered again.
func (b *Broker) DropOffsetCommits() *Fault { return b.addFault(faultDropCommit, AnyCode, 0) }

// DelayOffsetCommits applies consumer offset commits (UPDATE_CONSUMER_OFFSET
// and the commit offset carried by PULL_MESSAGE) d after they arrive, as a
// slow offset store would.
func (b *Broker) DelayOffsetCommits(d time.Duration) *Fault {
	return b.addFault(faultDelayCommit, AnyCode, d)
}

// FailSendBacks makes CONSUMER_SEND_MSG_BACK go unanswered. rocketmq-client-go
// times out after 3 s, then runs the listener again on the same message
// locally 5 s later, with ReconsumeTimes+1.
func (b *Broker) FailSendBacks() *Fault { return b.addFault(faultFailSendBack, AnyCode, 0) }

// RejectSendBacks makes CONSUMER_SEND_MSG_BACK answer SYSTEM_ERROR without
// storing the retry message. rocketmq-client-go v2.1.2 ignores the response
// code and treats the message as consumed: it is never redelivered.
func (b *Broker) RejectSendBacks() *Fault { return b.addFault(faultRejectSendBack, AnyCode, 0) }

// DuplicateSends stores every message sent (SEND_MESSAGE, SEND_MESSAGE_V2,
// SEND_BATCH_MESSAGE) twice, as a producer retry after a lost send response
// would: both copies have the same UNIQ_KEY, hence the same MsgId, and
// different offsets. The producer sees one success for the first copy.
func (b *Broker) DuplicateSends() *Fault { return b.addFault(faultDuplicateSend, AnyCode, 0) }

// DelayResponses delays the responses to requests with the code (AnyCode for
// all) by d. Other responses on the connection are not held up.
func (b *Broker) DelayResponses(code int16, d time.Duration) *Fault {
	return b.addFault(faultDelayResponse, code, d)
}

// DropResponses handles requests with the code (AnyCode for all) as usual but
// never sends their responses: the client's call times out although the
// broker acted on it (a sent message is stored, an offset committed).
func (b *Broker) DropResponses(code int16) *Fault { return b.addFault(faultDropResponse, code, 0) }

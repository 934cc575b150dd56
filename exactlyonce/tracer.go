package exactlyonce

import (
	"context"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Phase is a step of the listener's work on one message, which a Tracer can
// time as a child of the message's span.
type Phase int

const (
	// PhasePrecheck: the look-up of the message in the cache of committed
	// ids and then in transaction_record (WithTableCheck), before the
	// handler runs.
	PhasePrecheck Phase = iota
	// PhaseClaim: the claim insert that begins the delivery transaction,
	// when the listener makes it before the handler runs (TxListener,
	// WithDataSources). A Listener's Handler claims at its first statement
	// through the DataSource, which is then part of PhaseHandler.
	PhaseClaim
	// PhaseHandler: the handler (for a TxListener, with its transaction's
	// BeginTx and inner Commit, which end nothing).
	PhaseHandler
	// PhaseCommit: ending the delivery transactions after the handler
	// returned nil: their commit, or the rollback of a duplicate.
	PhaseCommit

	numPhases = iota
)

var phaseNames = [numPhases]string{"precheck", "claim", "handler", "commit"}

// String returns the phase's name, e.g. "precheck".
func (p Phase) String() string {
	if p < 0 || int(p) >= numPhases {
		return "unknown"
	}
	return phaseNames[p]
}

// Tracer traces the listener's work on each message: a span per message
// and a child per Phase. It is defined here, and called by the listener,
// so that this package imports no tracing library: the nested module
// exactlyonce/eotel implements it with OpenTelemetry. Implementations must
// be safe for concurrent use. A BatchListener starts the span of every
// message of a delivery when the delivery arrives and ends each with its
// outcome, and reports no phases: its transaction is shared by the
// batch.
type Tracer interface {
	// StartMessage is called when the listener starts on message m (after
	// the delivery passed its group check; not for messages not run, except
	// in a BatchListener, see above) and
	// returns the context for the work on m, given to StartPhase and, through
	// it, to the handler, and a function the listener calls once with m's
	// outcome and error when it is done with m. In-place retries
	// (WithLocalRetries) repeat the claim, handler and commit phases within
	// the same message.
	StartMessage(ctx context.Context, l Labels, m *primitive.MessageExt) (context.Context, func(Outcome, error))
	// StartPhase is called with a context derived from one StartMessage
	// returned when phase p begins, and returns the context for the
	// phase's work (the handler receives the PhaseHandler one) and a
	// function the listener calls once with the phase's error when it
	// ends.
	StartPhase(ctx context.Context, p Phase) (context.Context, func(error))
}

// WithTracer sets the Tracer the listener reports each message and its
// phases to. Default: none. A nil Tracer means none.
func WithTracer(t Tracer) Option {
	return optionFunc(func(c *config) {
		if t == nil {
			t = nopTracer{}
		}
		c.tracer = t
	})
}

type nopTracer struct{}

func nopEndMessage(Outcome, error) {}
func nopEndPhase(error)            {}

func (nopTracer) StartMessage(ctx context.Context, _ Labels, _ *primitive.MessageExt) (context.Context, func(Outcome, error)) {
	return ctx, nopEndMessage
}

func (nopTracer) StartPhase(ctx context.Context, _ Phase) (context.Context, func(error)) {
	return ctx, nopEndPhase
}

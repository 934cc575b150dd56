package mqdatasource

import (
	"errors"
	"net"
)

// IsTransient reports whether err, from opening or checking a database, may
// go away by itself so that the same step is worth trying again later: the
// server refused or dropped the connection or it timed out (any net.Error,
// including a DNS failure, which in a cluster is often a service not yet
// published), it is starting up or shutting down (PostgreSQL 57P01-57P03,
// class 08), or any other error IsRetryable accepts. A *SchemaError, an
// authentication failure, an unknown database, a malformed DSN and a
// cancelled or expired context are not transient. OpenContext and
// exactlyonce's Consumer.StartContext retry what it accepts.
func IsTransient(err error) bool {
	if errors.Is(err, ErrSchema) {
		return false
	}
	// A connection that timed out (a dial or read deadline, the driver's
	// own timeout setting) may wrap context.DeadlineExceeded, which
	// IsRetryable leaves to the caller; at start-up it is the network's.
	// A bare context error, which is a net.Error too, is the caller's.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Timeout() {
		return true
	}
	return IsRetryable(err)
}

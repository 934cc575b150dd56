package mqdatasource

import "errors"

// IsTransient reports whether err, from opening or checking a database, may
// go away by itself so that the same step is worth trying again later: the
// server refused or dropped the connection or timed out (any net.Error,
// including a DNS failure, which in a cluster is often a service not yet
// published), it is starting up or shutting down (PostgreSQL 57P01-57P03,
// class 08), or any other error IsRetryable accepts. A *SchemaError, an
// authentication failure, an unknown database, a malformed DSN and a
// cancelled or expired context are not transient. OpenContext and
// exactlyonce's Consumer.StartContext retry what it accepts.
func IsTransient(err error) bool {
	return !errors.Is(err, ErrSchema) && IsRetryable(err)
}

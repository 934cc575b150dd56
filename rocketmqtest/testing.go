package rocketmqtest

import "testing"

// NewBroker starts a broker for a test and closes it when the test ends.
func NewBroker(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

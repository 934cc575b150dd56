package eoprom_test

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/eoprom"
)

// Register the collector once and give it to every consumer, beside any
// other sink:
//
//	c, err := exactlyonce.NewConsumer(ds, "stock-service", exactlyonce.WithMetrics(m, stats))
//
// Here the listener's calls are made by hand, and the registry is gathered
// as a scrape would.
func Example() {
	m := eoprom.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	l := exactlyonce.Labels{Group: "stock-service", Topic: "orders"}
	m.MessageDone(l, exactlyonce.OutcomeProcessed)
	m.HandlerDone(l, exactlyonce.OutcomeProcessed, 4*time.Millisecond)
	m.MessageDone(l, exactlyonce.OutcomeSkippedTable)

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			labels := ""
			for _, p := range s.GetLabel() {
				if p.GetName() == "outcome" {
					labels = p.GetValue()
				}
			}
			if c := s.GetCounter(); c != nil {
				fmt.Println(f.GetName(), labels, c.GetValue())
			}
			if h := s.GetHistogram(); h != nil {
				fmt.Println(f.GetName(), labels, h.GetSampleCount())
			}
		}
	}
	// Output:
	// exactlyonce_handler_duration_seconds processed 1
	// exactlyonce_messages_total processed 1
	// exactlyonce_messages_total skipped_table 1
}

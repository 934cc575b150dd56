package eoprom_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce/eoprom"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

const group = "stock_service"

// message is a message as the client hands it to a listener.
func message(topic, key string) *primitive.MessageExt {
	m := &primitive.MessageExt{Message: primitive.Message{Topic: topic, Body: []byte(key)}, MsgId: key}
	m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, key)
	m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 1}
	return m
}

// clientCtx is the context rocketmq-client-go v2.1.2 passes to a
// concurrent listener.
func clientCtx() context.Context {
	mq := &primitive.MessageQueue{Topic: "orders", BrokerName: "broker-a", QueueId: 1}
	ctx := primitive.WithConsumerCtx(context.Background(), &primitive.ConsumeMessageContext{
		ConsumerGroup: group, MQ: mq, Properties: map[string]string{},
	})
	ctx = primitive.WithMethod(ctx, primitive.ConsumerPush)
	cc := primitive.NewConsumeConcurrentlyContext()
	cc.MQ = *mq
	return primitive.WithConcurrentlyCtx(ctx, cc)
}

// scrape returns the text exposition of reg, as Prometheus fetches it.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// TestScrape runs the real listener over the in-memory database with the
// collector as its Metrics, delivers a message, the same message again and
// a failing one, and scrapes the registry over HTTP.
func TestScrape(t *testing.T) {
	ds, err := mqdatasource.OpenConnector(memdb.New(), mqdatasource.WithDialect(mqdatasource.PostgreSQL()),
		mqdatasource.WithSchemaCheck(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	m := eoprom.New(eoprom.WithConstLabels(prometheus.Labels{"service": "stock"}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	listener := exactlyonce.TxListener(ds, group, func(ctx context.Context, tx *sql.Tx, msg *primitive.MessageExt) error {
		if string(msg.Body) == "bad" {
			return errors.New("handler failed")
		}
		return nil
	}, exactlyonce.WithMetrics(m), exactlyonce.WithLogger(slog.New(slog.DiscardHandler)), exactlyonce.WithLocalRetries(0))
	for _, key := range []string{"k1", "k1", "bad"} {
		_, _ = listener(clientCtx(), message("orders", key))
	}

	text := scrape(t, reg)
	for _, want := range []string{
		"# TYPE exactlyonce_messages_total counter",
		`exactlyonce_messages_total{group="stock_service",orderly="false",outcome="processed",service="stock",topic="orders"} 1`,
		`exactlyonce_messages_total{group="stock_service",orderly="false",outcome="failed",service="stock",topic="orders"} 1`,
		"# TYPE exactlyonce_handler_duration_seconds histogram",
		`exactlyonce_handler_duration_seconds_count{group="stock_service",orderly="false",outcome="processed",service="stock",topic="orders"} 1`,
		`exactlyonce_handler_duration_seconds_bucket{group="stock_service",orderly="false",outcome="failed",service="stock",topic="orders",le="+Inf"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks %s\n%s", want, text)
		}
	}
	// The second delivery of k1 is a duplicate, skipped by the pre-check
	// (from the listener's cache) or at the claim: either way one more
	// acknowledged message and no second handler run.
	skipped := 0
	for _, o := range []string{"skipped_cache", "skipped_table", "duplicate"} {
		if strings.Contains(text, `outcome="`+o+`",service="stock",topic="orders"} 1`+"\n") {
			skipped++
		}
	}
	if skipped != 1 {
		t.Errorf("the duplicate is counted %d times, want once\n%s", skipped, text)
	}
}

func TestOptions(t *testing.T) {
	m := eoprom.New(eoprom.WithNamespace("shop"), eoprom.WithBuckets(0.1, 1))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	m.HandlerDone(exactlyonce.Labels{Group: "g", Topic: "t", Orderly: true}, exactlyonce.OutcomeProcessed, 0)
	text := scrape(t, reg)
	for _, want := range []string{
		`shop_handler_duration_seconds_bucket{group="g",orderly="true",outcome="processed",topic="t",le="0.1"} 1`,
		`shop_handler_duration_seconds_bucket{group="g",orderly="true",outcome="processed",topic="t",le="1"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks %s\n%s", want, text)
		}
	}
	if strings.Contains(text, `le="0.001"`) {
		t.Errorf("default buckets despite WithBuckets:\n%s", text)
	}
}

package exactlyonce

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// recordingProducer is a rocketmq.Producer that records the messages of
// each send instead of sending them.
type recordingProducer struct {
	rocketmq.Producer // nil: the methods below are all a test calls
	sent              [][]*primitive.Message
}

func (p *recordingProducer) SendSync(_ context.Context, msgs ...*primitive.Message) (*primitive.SendResult, error) {
	p.sent = append(p.sent, msgs)
	return &primitive.SendResult{Status: primitive.SendOK}, nil
}

func (p *recordingProducer) SendAsync(ctx context.Context, f func(context.Context, *primitive.SendResult, error), msgs ...*primitive.Message) error {
	p.sent = append(p.sent, msgs)
	f(ctx, &primitive.SendResult{Status: primitive.SendOK}, nil)
	return nil
}

func (p *recordingProducer) SendOneWay(_ context.Context, msgs ...*primitive.Message) error {
	p.sent = append(p.sent, msgs)
	return nil
}

func (p *recordingProducer) Request(_ context.Context, _ time.Duration, msg *primitive.Message) (*primitive.Message, error) {
	p.sent = append(p.sent, []*primitive.Message{msg})
	return nil, nil
}

// TestWrapProducer: every message of every send through the wrapper is
// stamped before the client sees it, batch members included, each with a
// key of its own; a resend keeps the key; a business key is kept.
func TestWrapProducer(t *testing.T) {
	rec := &recordingProducer{}
	p := WrapProducer(rec)
	if WrapProducer(p) != p {
		t.Fatal("wrapping twice stamps twice")
	}
	ctx := context.Background()
	batch := []*primitive.Message{primitive.NewMessage("t", []byte("1")), primitive.NewMessage("t", []byte("2")), primitive.NewMessage("t", []byte("3"))}
	single := primitive.NewMessage("t", []byte("s"))
	business := primitive.NewMessage("t", []byte("b"))
	if err := SetBusinessKey(business, "order-42:paid"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendSync(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	_ = p.SendAsync(ctx, func(context.Context, *primitive.SendResult, error) {}, single)
	_ = p.SendOneWay(ctx, business)
	_, _ = p.Request(ctx, time.Second, primitive.NewMessage("t", []byte("r")))
	first := single.GetProperty(PropertyExtendUniqInfo)
	if _, err := p.SendSync(ctx, single); err != nil { // an application's resend
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, send := range rec.sent {
		for _, m := range send {
			k := m.GetProperty(PropertyExtendUniqInfo)
			if k == "" || m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex) == "" && m != business {
				t.Fatalf("unstamped message sent: %v", m.GetProperties())
			}
			if m == single {
				continue
			}
			if seen[k] {
				t.Fatalf("two messages share the key %q", k)
			}
			seen[k] = true
		}
	}
	if single.GetProperty(PropertyExtendUniqInfo) != first {
		t.Fatal("a resend changed the key")
	}
	if business.GetProperty(PropertyExtendUniqInfo) != "order-42:paid" {
		t.Fatalf("business key replaced: %q", business.GetProperty(PropertyExtendUniqInfo))
	}
}

// javaStamp stamps m as the Java producer with exactly-once delivery does:
// EXTEND_UNIQ_INFO is UNIQ_KEY followed by the producer's 4-byte value in
// upper-case hex.
func javaStamp(m *primitive.MessageExt, producerValue uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], producerValue)
	m.WithProperty(PropertyExtendUniqInfo, m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex)+strings.ToUpper(hex.EncodeToString(b[:])))
}

// TestIntegrationJavaAndGoStampedKeys: a message stamped in the Java
// producer's EXTEND_UNIQ_INFO format and one stamped by StampKey dedupe
// alike: each applied once however often delivered, recorded as
// EXTEND_UNIQ_INFO#group (the Java consumer's message_id, so a Java
// consumer of the same table finds the record). Two messages with the same
// client UNIQ_KEY (two producers with the same IP and pid) but different
// stamps are two messages; unstamped, they are one, and the second is lost
// to the first's record, which is what the stamp prevents.
func TestIntegrationJavaAndGoStampedKeys(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		stats := &Stats{}
		l := Listener(f.ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			_, err := f.ds.DB().ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), testGroup, string(m.Body), 0)
			return err
		}, quiet, WithMetrics(stats), WithCacheSize(0))
		const sharedUniq = "7F0000010001B4AAC27A4C1D2E000001" // what two pid-1 producers both issue
		mk := map[string]func() *primitive.MessageExt{
			"java": func() *primitive.MessageExt {
				m := newMsg("t", sharedUniq, 1)
				m.Body = []byte("java")
				javaStamp(m, 0x1A2B3C4D)
				return m
			},
			"go": func() *primitive.MessageExt {
				m := newMsg("t", sharedUniq, 2)
				m.Body = []byte("go")
				ext := primitive.NewMessage("t", nil)
				ext.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, sharedUniq)
				StampKey(ext)
				m.WithProperty(PropertyExtendUniqInfo, ext.GetProperty(PropertyExtendUniqInfo))
				return m
			},
		}
		stamps := map[string]string{}
		for name, build := range mk {
			m := build()
			stamps[name] = m.GetProperty(PropertyExtendUniqInfo)
			for range 3 {
				deliverUntilOK(t, l, testGroup, false, func() []*primitive.MessageExt {
					c := build() // a redelivery: the same properties
					c.WithProperty(PropertyExtendUniqInfo, stamps[name])
					return []*primitive.MessageExt{c}
				})
			}
		}
		if stamps["java"] == stamps["go"] || len(stamps["java"]) != 40 || len(stamps["go"]) != 40 {
			t.Fatalf("stamps %q", stamps)
		}
		rows, distinct := f.appliedCount(t)
		if rows != 2 || distinct != 2 {
			t.Fatalf("applied rows %d distinct %d, want 2 and 2: %v", rows, distinct, stats.Snapshot())
		}
		for name, k := range stamps {
			if f.QueryInt(t, "SELECT COUNT(*) FROM "+f.records+" WHERE message_id = ?", k+"#"+testGroup) != 1 {
				t.Fatalf("%s: no record %s#%s", name, k, testGroup)
			}
		}
		// Unstamped, the two producers' messages share one key: the
		// second is taken for a duplicate. This is the collision the
		// stamp exists for, shown here so that the test above means
		// something.
		g := newFixture(t, e)
		ul := Listener(g.ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			_, err := g.ds.DB().ExecContext(ctx, g.Rebind("INSERT INTO "+g.applied+" (grp, k, seq) VALUES (?, ?, ?)"), testGroup, string(m.Body), 0)
			return err
		}, quiet)
		for _, body := range []string{"first", "second"} {
			deliverUntilOK(t, ul, testGroup, false, func() []*primitive.MessageExt {
				m := newMsg("t", sharedUniq, 3)
				m.Body = []byte(body)
				return []*primitive.MessageExt{m}
			})
		}
		if rows, _ := g.appliedCount(t); rows != 1 {
			t.Fatalf("unstamped: %d applied, want 1 (the second lost to the first's record)", rows)
		}
	})
}

// TestRequireProducerKey: with WithRequireProducerKey a message without
// EXTEND_UNIQ_INFO is refused before its handler (OutcomeUnstamped, not
// acknowledged); a stamped one is processed.
func TestRequireProducerKey(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := newFixture(t, e)
		for _, batch := range []bool{false, true} {
			stats := &Stats{}
			ran := 0
			h := func(ctx context.Context) error {
				ran++
				_, err := f.ds.DB().ExecContext(ctx, f.Rebind("INSERT INTO "+f.applied+" (grp, k, seq) VALUES (?, ?, ?)"), testGroup, "x", 0)
				return err
			}
			var l ListenerFunc
			if batch {
				l = BatchListener(f.ds, testGroup, func(ctx context.Context, _ []*primitive.MessageExt) error { return h(ctx) }, quiet, WithMetrics(stats), WithRequireProducerKey())
			} else {
				l = Listener(f.ds, testGroup, func(ctx context.Context, _ *primitive.MessageExt) error { return h(ctx) }, quiet, WithMetrics(stats), WithRequireProducerKey())
			}
			ctx, _ := clientCtx(testGroup, false)
			unstamped := newMsg("t", fmt.Sprintf("U%v", batch), 1)
			res, err := l(ctx, unstamped)
			if res == consumer.ConsumeSuccess || !errors.Is(err, ErrUnstamped) || ran != 0 || stats.Count(OutcomeUnstamped) != 1 {
				t.Fatalf("batch %v: unstamped: %v, %v, handler ran %d, %v", batch, res, err, ran, stats.Snapshot())
			}
			stamped := newMsg("t", fmt.Sprintf("S%v", batch), 2)
			javaStamp(stamped, 7)
			if res, err := l(ctx, stamped); res != consumer.ConsumeSuccess || err != nil || ran != 1 || stats.Count(OutcomeProcessed) != 1 {
				t.Fatalf("batch %v: stamped: %v, %v, %v", batch, res, err, stats.Snapshot())
			}
		}
	})
}

// TestIntegrationKeyCollisionOutcome: on a message_id with a
// case-insensitive collation, "order-a" and then "ORDER-A" through the
// listener: the second is OutcomeKeyCollision and not acknowledged (with
// and without the pre-check, one message at a time and in a batch), and
// never counted as a duplicate.
func TestIntegrationKeyCollisionOutcome(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		table, applied := dbtest.UniqueName(t, "coll"), dbtest.UniqueName(t, "applied")
		column := "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL UNIQUE"
		if e.Name == "postgres" {
			coll := dbtest.UniqueName(t, "ci")
			e.Exec(t, `CREATE COLLATION `+coll+` (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`)
			t.Cleanup(func() { e.Exec(t, "DROP COLLATION IF EXISTS "+coll) })
			column = "varchar(255) COLLATE " + coll + " NOT NULL UNIQUE"
		}
		e.CreateClaimTable(t, table, column)
		e.Exec(t, "CREATE TABLE "+applied+" (k varchar(64) NOT NULL)")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+applied) })
		ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table), mqdatasource.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		apply := func(ctx context.Context, k string) error {
			_, err := ds.DB().ExecContext(ctx, e.Rebind("INSERT INTO "+applied+" (k) VALUES (?)"), k)
			return err
		}
		msg := func(key string) *primitive.MessageExt {
			m := newMsg("t", "U-"+key, 1)
			m.WithProperty(PropertyExtendUniqInfo, key)
			return m
		}
		ctx, _ := clientCtx(testGroup, false)
		first := Listener(ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error {
			return apply(ctx, m.GetProperty(PropertyExtendUniqInfo))
		}, quiet)
		if res, err := first(ctx, msg("order-a")); res != consumer.ConsumeSuccess || err != nil {
			t.Fatalf("order-a: %v, %v", res, err)
		}
		for _, tc := range []struct {
			name string
			l    func(stats *Stats) ListenerFunc
		}{
			{"pre-check", func(s *Stats) ListenerFunc {
				return Listener(ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error { return apply(ctx, "x") }, quiet, WithMetrics(s))
			}},
			{"claim", func(s *Stats) ListenerFunc {
				return Listener(ds, testGroup, func(ctx context.Context, m *primitive.MessageExt) error { return apply(ctx, "x") }, quiet, WithMetrics(s), WithTableCheck(false))
			}},
			{"TxHandler claim", func(s *Stats) ListenerFunc {
				return TxListener(ds, testGroup, func(ctx context.Context, tx *sql.Tx, m *primitive.MessageExt) error {
					_, err := tx.ExecContext(ctx, e.Rebind("INSERT INTO "+applied+" (k) VALUES (?)"), "x")
					return err
				}, quiet, WithMetrics(s), WithTableCheck(false))
			}},
			{"batch", func(s *Stats) ListenerFunc {
				return BatchListener(ds, testGroup, func(ctx context.Context, ms []*primitive.MessageExt) error {
					for range ms {
						if err := apply(ctx, "x"); err != nil {
							return err
						}
					}
					return nil
				}, quiet, WithMetrics(s), WithTableCheck(false))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stats := &Stats{}
				l := tc.l(stats)
				res, err := l(ctx, msg("ORDER-A"))
				if res == consumer.ConsumeSuccess || !errors.Is(err, mqdatasource.ErrKeyCollision) || stats.Count(OutcomeKeyCollision) != 1 || stats.Count(OutcomeDuplicate)+stats.Count(OutcomeSkippedTable) != 0 {
					t.Fatalf("ORDER-A: %v, %v, %v", res, err, stats.Snapshot())
				}
				if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+applied); n != 1 {
					t.Fatalf("%d applied, want 1 (order-a only)", n)
				}
			})
		}
	})
}

// TestIntegrationUnstorableKeyOutcome: on the Java client's utf8 (utf8mb3)
// table, opened with WithCharsetWarnOnly, a message whose key has an emoji
// is refused before its handler runs (OutcomeInvalid, ErrUnstorableKey),
// one by one and in a batch, and a CJK key is applied.
func TestIntegrationUnstorableKeyOutcome(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "mysql" {
			t.Skip("a column's character set is MySQL's")
		}
		table, applied := dbtest.UniqueName(t, "mb3"), dbtest.UniqueName(t, "applied")
		e.CreateClaimTable(t, table, "varchar(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin NOT NULL UNIQUE")
		e.Exec(t, "CREATE TABLE "+applied+" (k varchar(64) CHARACTER SET utf8mb4 NOT NULL)")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+applied) })
		if _, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table)); !errors.Is(err, mqdatasource.ErrSchema) {
			t.Fatalf("Open of a utf8mb3 message_id: %v, want ErrSchema", err)
		}
		ds, err := mqdatasource.Open(e.Driver, e.DSN, mqdatasource.WithTable(table), mqdatasource.WithCharsetWarnOnly(),
			mqdatasource.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		ran := 0
		apply := func(ctx context.Context, m *primitive.MessageExt) error {
			ran++
			_, err := ds.DB().ExecContext(ctx, "INSERT INTO "+applied+" (k) VALUES (?)", m.GetProperty(PropertyExtendUniqInfo))
			return err
		}
		msg := func(key string) *primitive.MessageExt {
			m := newMsg("t", "U-"+key, 1)
			m.WithProperty(PropertyExtendUniqInfo, key)
			return m
		}
		for _, batch := range []bool{false, true} {
			stats := &Stats{}
			var l ListenerFunc
			if batch {
				l = BatchListener(ds, testGroup, func(ctx context.Context, ms []*primitive.MessageExt) error {
					for _, m := range ms {
						if err := apply(ctx, m); err != nil {
							return err
						}
					}
					return nil
				}, quiet, WithMetrics(stats))
			} else {
				l = Listener(ds, testGroup, apply, quiet, WithMetrics(stats))
			}
			ran = 0
			ctx, _ := clientCtx(testGroup, false)
			res, err := l(ctx, msg(fmt.Sprintf("pay-😀-%v", batch)))
			if res == consumer.ConsumeSuccess || !errors.Is(err, mqdatasource.ErrUnstorableKey) || ran != 0 || stats.Count(OutcomeInvalid) != 1 {
				t.Fatalf("batch %v, emoji key: %v, %v, handler ran %d, %v", batch, res, err, ran, stats.Snapshot())
			}
			if res, err := l(ctx, msg(fmt.Sprintf("付款-%v", batch))); res != consumer.ConsumeSuccess || err != nil || ran != 1 {
				t.Fatalf("batch %v, CJK key: %v, %v, handler ran %d", batch, res, err, ran)
			}
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+applied); n != 2 {
			t.Fatalf("%d applied, want 2 (the CJK keys)", n)
		}
	})
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/brokertest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// The end-to-end tests run the program as a separate process, built without
// the race detector: rocketmq-client-go v2.1.2 has data races of its own,
// which would fail any test that runs its clients under -race. So these
// tests run in CI (scripts/test.sh, with -race) too.

var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]string{} // package -> binary
)

// e2eSuite records the end-to-end tests' outcomes per broker for the
// summary.
var e2eSuite = brokertest.NewSuite("price-change")

func TestMain(m *testing.M) {
	code := m.Run()
	if err := e2eSuite.Report(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// programBinary builds this program (once per test run) and returns its path.
func programBinary(t *testing.T) string { return buildOnce(t, "price-change", ".") }

// buildOnce builds the package pkg into a binary called name, once per test
// run, and returns its path.
func buildOnce(t *testing.T, name, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if bin, ok := binBuilt[pkg]; ok {
		return bin
	}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "price-change-test")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	bin := filepath.Join(binDir, name)
	if err := build(bin, pkg); err != nil {
		t.Fatal(err)
	}
	binBuilt[pkg] = bin
	return bin
}

func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg) // go test puts its go first in PATH
	if b, err := cmd.CombinedOutput(); err != nil {
		return &buildError{pkg: pkg, out: string(b), err: err}
	}
	return nil
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// testDB is a fresh database on the server of MYSQL_DSN or POSTGRES_DSN,
// dropped when the test ends.
type testDB struct {
	driver, dsn string
}

func newTestDB(t *testing.T, kind string) testDB {
	t.Helper()
	for _, e := range dbtest.Envs(t) {
		if e.Name == kind {
			return testDB{driver: e.Driver, dsn: e.NewDatabase(t, "price_change")}
		}
	}
	t.Skipf("no %s database configured: run under scripts/testdb.sh (e.g. scripts/testdb.sh go -C examples/price-change test .)", kind)
	return testDB{}
}

// open opens the database through a DataSource, with the schema created.
func (db testDB) open(t *testing.T) *mqdatasource.DataSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := openDB(ctx, db.driver, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSchemaFilesSplit(t *testing.T) {
	for name, text := range map[string]string{
		"schema.sql": schemaMySQL, "schema.postgres.sql": schemaPostgres, "schema.sqlserver.sql": schemaSQLServer,
	} {
		if n := len(schemaStatements(text)); n < 2 {
			t.Errorf("%s: %d statements, want at least 2", name, n)
		}
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	pl := plan{Products: 3, Changes: 5, Seed: 7, Resend: 0.5}
	for i := range pl.Products {
		var prev int64
		for v := int64(1); v <= int64(pl.Changes); v++ {
			c := pl.change(i, v)
			if c.PriceCents < 100 || c.PriceCents >= 100_000 || c.ChangeCents != c.PriceCents-prev {
				t.Fatalf("change %+v after price %d", c, prev)
			}
			prev = c.PriceCents
		}
	}
	// The producer and the verifier run in different processes (and
	// possibly builds): the prices must be a function of the plan alone,
	// so they are pinned here.
	for _, p := range []struct {
		product int
		version int64
		cents   int64
	}{{0, 1, 84167}, {1, 3, 87744}, {2, 5, 9709}} {
		if got := pl.change(p.product, p.version).PriceCents; got != p.cents {
			t.Errorf("change(%d, %d) price %d, want %d", p.product, p.version, got, p.cents)
		}
	}
	if pl.change(0, 1).Key() != "price:SKU-0001:1" {
		t.Errorf("key %q", pl.change(0, 1).Key())
	}
	resent := 0
	for v := int64(1); v <= 1000; v++ {
		if pl.resent(0, v) {
			resent++
		}
	}
	if resent < 400 || resent > 600 {
		t.Errorf("%d of 1000 resent at fraction 0.5", resent)
	}
}

// The verifier must catch what it is there to catch: a change applied twice,
// a change missing, changes applied out of order.
func TestVerifierCatchesMistakes(t *testing.T) {
	ds := newTestDB(t, "mysql").open(t)
	ctx := context.Background()
	pl := plan{Products: 3, Changes: 4, Seed: 1}
	if err := seedProducts(ctx, ds, pl.Products); err != nil {
		t.Fatal(err)
	}
	const group = "verifier-test"
	apply := func(i int, v int64, key string) {
		t.Helper()
		c := pl.change(i, v)
		d := mqdatasource.Delivery{ConsumerGroup: group, Key: key, Topic: "t", BrokerName: "b"}
		res, err := ds.Deliver(ctx, d, func(ctx context.Context) error {
			tx, err := ds.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := applyChange(ctx, tx, ds.Dialect(), c); err != nil {
				return err
			}
			return tx.Commit()
		})
		if res != mqdatasource.Committed {
			t.Fatalf("delivery %v: %v", res, err)
		}
	}
	check := func(want int) *Report {
		t.Helper()
		var r Report
		if err := verify(ctx, ds, pl, group, &r); err != nil {
			t.Fatal(err)
		}
		if r.Mismatches != want {
			t.Fatalf("%d mismatches, want %d: %v", r.Mismatches, want, r.Problems)
		}
		return &r
	}

	for i := range pl.Products {
		for v := int64(1); v <= int64(pl.Changes); v++ {
			if i == 2 && v == 3 {
				continue // product 3 misses version 3 for now
			}
			apply(i, v, pl.change(i, v).Key())
		}
	}
	r := check(2) // product 3 wrong, and one record short
	if !strings.Contains(strings.Join(r.Problems, "\n"), "SKU-0003") {
		t.Errorf("problems do not name SKU-0003: %v", r.Problems)
	}
	apply(2, 3, pl.change(2, 3).Key()) // late and out of order: history 1 2 4 3
	r = check(1)
	if !strings.Contains(r.Problems[0], "history row 3 is version 4") {
		t.Errorf("problem %q, want the order violation", r.Problems[0])
	}

	// A clean run, then one change applied twice under another key.
	if _, err := ds.DB().Exec("DELETE FROM price_history"); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.DB().Exec("DELETE FROM product"); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.DB().Exec("DELETE FROM transaction_record"); err != nil {
		t.Fatal(err)
	}
	if err := seedProducts(ctx, ds, pl.Products); err != nil {
		t.Fatal(err)
	}
	for i := range pl.Products {
		for v := int64(1); v <= int64(pl.Changes); v++ {
			apply(i, v, pl.change(i, v).Key())
		}
	}
	check(0)
	apply(1, 4, "another-key")
	r = check(2) // SKU-0002 counted twice, and one record too many
	if !strings.Contains(r.Problems[0], "change_count 5, want 4") {
		t.Errorf("problem %q, want the double count", r.Problems[0])
	}
}

func TestReportTable(t *testing.T) {
	r := &Report{
		Products: 50, ChangesSent: 3000, Resends: 79, BrokerDuplicates: 314, Rewound: 2420, Restarts: 1,
		Deliveries: 6199, Skipped: 3199, Applied: 3000, Records: 3000,
	}
	var b strings.Builder
	r.print(&b)
	want := `  changes sent            3000   50 products
  duplicates injected     2813   79 producer resends, 314 broker duplicates, 2420 by the offset rewind, 1 consumer restart
  deliveries              6199   messages handed to the listeners
  duplicates skipped      3199   acknowledged without applying
  applied                 3000   transactions committed; 3000 records
  mismatches                 0
OK: every change applied exactly once, in order
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	r = &Report{Products: 2, ChangesSent: 4, Resends: -1, BrokerDuplicates: -1, Rewound: -1,
		Deliveries: -1, Skipped: -1, Applied: -1, Retried: -1, Records: 5}
	r.problem("SKU-0001: change_count 3, want 2")
	r.problem("transaction_record has 5 rows for group g, want 4")
	b.Reset()
	r.print(&b)
	want = `  changes sent               4   2 products
  duplicates injected        -
  deliveries                 -   messages handed to the listeners
  duplicates skipped         -   acknowledged without applying
  applied                    -   transactions committed; 5 records
  mismatches                 2
FAIL: 2 mismatches
  SKU-0001: change_count 3, want 2
  transaction_record has 5 rows for group g, want 4
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Bad flags are usage errors (exit status 2) found before anything starts:
// no database is opened and no broker is dialled.
// A consumer without products would retry every message forever.
func TestConsumeRefusesNoProducts(t *testing.T) {
	err := run(context.Background(), []string{"consume", "-namesrv", "127.0.0.1:1", "-dsn", "unused", "-products", "0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-products") {
		t.Fatalf("%v, want an error naming -products", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "-style", "bogus"},
		{"consume", "-style", "bogus", "-namesrv", "127.0.0.1:1", "-dsn", "unused"},
		{"demo", "-no-such-flag"},
		{"demo", "-driver", "pgx"},
		{"demo", "-queues", "0"},
		{"demo", "-timeout", "0s"},
		{"produce", "-proxy", "127.0.0.1:1", "-namesrv", "127.0.0.1:1"},
	} {
		var stderr strings.Builder
		err := run(context.Background(), args, io.Discard, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want errUsage", args, err)
		}
		if args[1] == "-style" && !strings.Contains(stderr.String(), `unknown -style "bogus"`) {
			t.Errorf("%q: stderr %q does not name the bad style", args, stderr.String())
		}
		if last := args[len(args)-2]; last == "-queues" && len(args) > 3 && !strings.Contains(stderr.String(), last+" has no effect with -") {
			t.Errorf("%q: stderr %q does not say %s is unused", args, stderr.String(), last)
		}
		if args[1] == "-proxy" && !strings.Contains(stderr.String(), "-proxy and -namesrv exclude each other") {
			t.Errorf("%q: stderr %q does not name the clash", args, stderr.String())
		}
		if flagName := strings.TrimPrefix(args[1], "-"); len(args) == 3 && !strings.Contains(stderr.String(), "-"+flagName) {
			t.Errorf("%q: stderr %q does not name -%s", args, stderr.String(), flagName)
		}
	}
}

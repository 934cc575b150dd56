package mqdatasource_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// keysOf are dedupe keys that differ only in characters a narrow column
// lacks: two emoji, two Chinese business keys, Latin-1 and ASCII ones.
var keysOf = []string{"pay-😀-42", "pay-😁-42", "付款-42", "退款-42", "café-42", "cafe-42", "pay-42"}

// TestIntegrationKeyCharsets: claim tables with message_id in latin1,
// utf8mb3 and utf8mb4, binary and case-insensitive collations, in strict
// and non-strict sessions, with emoji, CJK, Latin-1 and ASCII keys, each
// delivered twice: every message is applied exactly once, or refused before
// its handler runs, with ErrUnstorableKey (a character the character set
// lacks) or ErrKeyCollision (a key the collation takes for an earlier one:
// utf8mb4_general_ci holds "pay-😀-42" and "pay-😁-42" equal, all the _ci
// ones "café" and "cafe"), and never acknowledged unapplied (a Duplicate
// at its first delivery).
// latin1 and utf8mb3 are refused by the schema check with the ALTER that
// fixes them, and accepted with WithCharsetWarnOnly.
func TestIntegrationKeyCharsets(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "mysql" {
			t.Skip("character sets per column are MySQL's; PostgreSQL's encoding is the database's (TestIntegrationPostgresEncoding)")
		}
		for _, charset := range []string{"latin1", "utf8mb3", "utf8mb4"} {
			for _, tc := range []struct{ mode, coll string }{
				{"STRICT_TRANS_TABLES", "bin"}, {"", "bin"}, {"STRICT_TRANS_TABLES", "general_ci"}, {"", "general_ci"},
			} {
				mode, coll := tc.mode, charset+"_"+tc.coll
				if charset == "latin1" && tc.coll == "general_ci" {
					coll = "latin1_swedish_ci"
				}
				name := coll + "/non-strict"
				if mode != "" {
					name = coll + "/strict"
				}
				t.Run(name, func(t *testing.T) {
					table := dbtest.UniqueName(t, "cs")
					e.CreateClaimTable(t, table, "varchar(255) CHARACTER SET "+charset+" COLLATE "+coll+" NOT NULL UNIQUE")
					cfg, err := mysql.ParseDSN(e.DSN)
					if err != nil {
						t.Fatal(err)
					}
					cfg.Params = map[string]string{"sql_mode": "'" + mode + "'"}
					c, err := mysql.NewConnector(cfg)
					if err != nil {
						t.Fatal(err)
					}
					ds, err := mqdatasource.OpenConnector(c, mqdatasource.WithTable(table))
					if charset != "utf8mb4" {
						fix := "ALTER TABLE `" + table + "` MODIFY `message_id` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
						if !errors.Is(err, mqdatasource.ErrSchema) || !strings.Contains(err.Error(), fix) {
							t.Fatalf("Open of a %s message_id: %v; want ErrSchema with %q", charset, err, fix)
						}
						c, _ = mysql.NewConnector(cfg)
						ds, err = mqdatasource.OpenConnector(c, mqdatasource.WithTable(table), mqdatasource.WithCharsetWarnOnly())
					}
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					defer ds.Close()
					for _, key := range keysOf {
						runs := 0
						results := make([]mqdatasource.Result, 2)
						for i := range results {
							res, err := ds.Deliver(context.Background(), delivery("G", key), func(ctx context.Context) error {
								runs++
								_, err := ds.DB().ExecContext(ctx, "SELECT 1")
								return err
							})
							results[i] = res
							switch {
							case res == mqdatasource.Failed && errors.Is(err, mqdatasource.ErrUnstorableKey) && errors.Is(err, mqdatasource.ErrInvalidDelivery):
								if charset == "utf8mb4" {
									t.Fatalf("%q refused by utf8mb4: %v", key, err)
								}
							case res == mqdatasource.Failed && errors.Is(err, mqdatasource.ErrKeyCollision):
								if !strings.HasSuffix(coll, "_ci") {
									t.Fatalf("%q collides in binary collation %s: %v", key, coll, err)
								}
							case err != nil:
								t.Fatalf("%q delivery %d: %v, %v", key, i+1, res, err)
							}
						}
						stored := recordedExactly(t, e, table, key)
						switch {
						case results[0] == mqdatasource.Committed && results[1] == mqdatasource.Duplicate && runs == 1 && stored:
							// applied once
						case results[0] == mqdatasource.Failed && results[1] == mqdatasource.Failed && runs == 0 && !stored:
							// refused before the handler: a key the
							// character set lacks, or one the
							// collation takes for an earlier key
						default:
							t.Fatalf("%q on %s: results %v, handler runs %d, recorded exactly %v", key, charset, results, runs, stored)
						}
					}
				})
			}
		}
	})
}

// f2 reports whether table records key#G byte for byte (read back in
// utf8mb4 and compared here, not by the column's collation).
func recordedExactly(t *testing.T, e *dbtest.Env, table, key string) bool {
	t.Helper()
	rows, err := e.Admin.Query("SELECT message_id FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == key+"#G" {
			return true
		}
	}
	return false
}

// ciCollation returns a message_id column type whose collation takes keys
// that differ in case for one value: MySQL's utf8mb4_general_ci, or a
// nondeterministic ICU collation on PostgreSQL (created for the test).
func ciCollation(t *testing.T, e *dbtest.Env) string {
	t.Helper()
	if e.Name == "mysql" {
		return "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL UNIQUE"
	}
	coll := dbtest.UniqueName(t, "ci")
	e.Exec(t, `CREATE COLLATION `+coll+` (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`)
	t.Cleanup(func() { e.Exec(t, "DROP COLLATION IF EXISTS "+coll) })
	return "varchar(255) COLLATE " + coll + " NOT NULL UNIQUE"
}

// TestIntegrationKeyCollision: on a message_id whose collation takes
// "order-a" and "ORDER-A" for one value, the second message's claim meets
// the first's record. It fails with a *KeyCollisionError naming both ids
// and the column, is never Duplicate, commits nothing, and stays so
// however often it is delivered; the pre-check (IsConsumed) says the same,
// and a batch holding it (or both keys) fails as a collision too.
func TestIntegrationKeyCollision(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		f := &fixture{Env: e, table: dbtest.UniqueName(t, "coll"), account: dbtest.UniqueName(t, "acct")}
		e.CreateClaimTable(t, f.table, ciCollation(t, e))
		e.Exec(t, "CREATE TABLE "+f.account+" (id int PRIMARY KEY, balance int NOT NULL)")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+f.account) })
		e.Exec(t, "INSERT INTO "+f.account+" (id, balance) VALUES (1, 0)")
		ds, err := mqdatasource.OpenConnector(connector(t, e, ""), mqdatasource.WithTable(f.table))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer ds.Close()
		f.ds = ds
		bg := context.Background()

		if applied, err := f.deliver(t, "G", "order-a", 1); !applied || err != nil {
			t.Fatalf("order-a: %v, %v", applied, err)
		}
		for i := range 2 {
			for _, eager := range []bool{true, false} {
				var opts []mqdatasource.DeliverOption
				if eager {
					opts = append(opts, mqdatasource.ClaimIn(ds, nil))
				}
				res, err := mqdatasource.Deliver(bg, delivery("G", "ORDER-A"), func(ctx context.Context) error {
					_ = f.increment(ctx, 1) // the error swallowed: still a failure
					return nil
				}, opts...)
				var ke *mqdatasource.KeyCollisionError
				if res != mqdatasource.Failed || !errors.As(err, &ke) || errors.Is(err, mqdatasource.ErrAlreadyConsumed) {
					t.Fatalf("ORDER-A, delivery %d (eager %v): %v, %v; want failed with a *KeyCollisionError", i+1, eager, res, err)
				}
				if ke.MessageID != "ORDER-A#G" || ke.Stored != "order-a#G" || ke.Table != f.table || !strings.Contains(ke.Column, "collation") {
					t.Fatalf("collision %+v", ke)
				}
			}
		}
		if b := f.balance(t, 1); b != 1 {
			t.Fatalf("balance %d, want 1 (order-a only)", b)
		}
		if ok, err := ds.IsConsumed(bg, delivery("G", "ORDER-A")); ok || !errors.Is(err, mqdatasource.ErrKeyCollision) {
			t.Fatalf("IsConsumed(ORDER-A) = %v, %v; want false, ErrKeyCollision", ok, err)
		}
		if ok, err := ds.IsConsumed(bg, delivery("G", "order-a")); !ok || err != nil {
			t.Fatalf("IsConsumed(order-a) = %v, %v", ok, err)
		}
		consumed, err := ds.ConsumedOf(bg, []mqdatasource.Delivery{delivery("G", "ORDER-A"), delivery("G", "order-a")})
		if err != nil || consumed[0] || !consumed[1] {
			t.Fatalf("ConsumedOf = %v, %v; want [false true]", consumed, err)
		}
		for _, keys := range [][]string{
			{"order-b", "ORDER-A"}, // against a record
			{"order-c", "ORDER-C"}, // two of the batch
			{"order-a", "Order-A"}, // a duplicate and its collision
		} {
			batch := []mqdatasource.Delivery{delivery("G", keys[0]), delivery("G", keys[1])}
			_, err := ds.DeliverBatch(bg, batch, func(ctx context.Context, fresh []int) error {
				for range fresh {
					if err := f.update(ctx, 1, 100); err != nil {
						return err
					}
				}
				return nil
			})
			if !errors.Is(err, mqdatasource.ErrKeyCollision) {
				t.Fatalf("DeliverBatch %v: %v; want ErrKeyCollision", keys, err)
			}
		}
		if b := f.balance(t, 1); b != 1 {
			t.Fatalf("balance %d after the batches, want 1: a batch with a collision commits nothing", b)
		}
	})
}

// TestIntegrationLatin1ReplacementCollision: without a schema check the
// DataSource does not know the column's character set, so nothing refuses
// an emoji key before the claim. In a non-strict session a latin1 column
// stores "pay-😀-42#G" as "pay-?-42#G"; the claim of "pay-😁-42" then meets
// that record and must be a collision, not a duplicate (before this check
// it was acknowledged unapplied).
func TestIntegrationLatin1ReplacementCollision(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "mysql" {
			t.Skip("PostgreSQL never replaces characters: a conversion it cannot make is an error")
		}
		table := dbtest.UniqueName(t, "l1")
		// The unique key named as in the migration file: without a schema
		// check, the wrapper knows the record's key by that name (or by
		// the entry the 1062 names, which is the mangled value here).
		e.CreateClaimTable(t, table, "varchar(255) CHARACTER SET latin1 NOT NULL, CONSTRAINT uk_message_id UNIQUE (message_id)")
		cfg, err := mysql.ParseDSN(e.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Params = map[string]string{"sql_mode": "''"}
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := mqdatasource.OpenConnector(c, mqdatasource.WithTable(table), mqdatasource.WithSchemaCheck(false))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		claim := func(key string) (mqdatasource.Result, error) {
			return ds.Deliver(context.Background(), delivery("G", key), func(context.Context) error { return nil })
		}
		if res, err := claim("pay-😀-42"); res != mqdatasource.Committed || err != nil {
			t.Fatalf("first: %v, %v", res, err)
		}
		if got := e.QueryInt(t, "SELECT COUNT(*) FROM "+table+" WHERE message_id = 'pay-?-42#G'"); got != 1 {
			t.Fatalf("the server did not replace the emoji (count %d): the test's premise is gone", got)
		}
		res, err := claim("pay-😁-42")
		var ke *mqdatasource.KeyCollisionError
		if res != mqdatasource.Failed || !errors.As(err, &ke) {
			t.Fatalf("second: %v, %v; want failed with a *KeyCollisionError", res, err)
		}
		if ke.MessageID != "pay-😁-42#G" || ke.Stored != "pay-?-42#G" {
			t.Fatalf("collision %+v", ke)
		}
		t.Logf("reported: %v", err)
	})
}

// TestIntegrationPostgresEncoding: a claim table in a database whose
// encoding is not UTF8 (SQL_ASCII) is refused by the schema check, and
// with WithCharsetWarnOnly only ASCII keys are accepted.
func TestIntegrationPostgresEncoding(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		if e.Name != "postgres" {
			t.Skip("the encoding of a database is PostgreSQL's")
		}
		name := strings.ReplaceAll(dbtest.UniqueName(t, "enc"), "-", "_")
		e.Exec(t, "CREATE DATABASE "+name+" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
		t.Cleanup(func() { e.Exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
		dsn := strings.Replace(e.DSN, "/test?", "/"+name+"?", 1)
		if dsn == e.DSN {
			t.Skipf("cannot derive a DSN for database %s from %s", name, e.DSN)
		}
		setup, err := mqdatasource.Open("pgx", dsn, mqdatasource.WithTable("transaction_record"), mqdatasource.WithSchemaCheck(false))
		if err != nil {
			t.Fatal(err)
		}
		defer setup.Close()
		err = setup.Migrate(context.Background())
		if !errors.Is(err, mqdatasource.ErrSchema) || !strings.Contains(err.Error(), "SQL_ASCII") || !strings.Contains(err.Error(), "ENCODING 'UTF8'") {
			t.Fatalf("Migrate in a SQL_ASCII database: %v; want ErrSchema naming the encoding and the fix", err)
		}
		ds, err := mqdatasource.Open("pgx", dsn, mqdatasource.WithCharsetWarnOnly())
		if err != nil {
			t.Fatalf("Open with WithCharsetWarnOnly: %v", err)
		}
		defer ds.Close()
		for key, ok := range map[string]bool{"pay-42": true, "pay-😀-42": false, "付款-42": false} {
			res, err := ds.Deliver(context.Background(), delivery("G", key), func(context.Context) error { return nil })
			if ok && (res != mqdatasource.Committed || err != nil) || !ok && !errors.Is(err, mqdatasource.ErrUnstorableKey) {
				t.Errorf("%q: %v, %v", key, res, err)
			}
		}
	})
}

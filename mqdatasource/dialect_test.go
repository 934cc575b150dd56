package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	mssql "github.com/microsoft/go-mssqldb"
)

func TestClaimSQL(t *testing.T) {
	for _, tc := range []struct {
		d    Dialect
		want string
	}{
		{MySQL(), "INSERT INTO `tr` (`consumer_group`, `message_id`, `topic_name`, `ctime`, `queue_id`, `offset`, `broker_name`) VALUES (?, ?, ?, ?, ?, ?, ?)"},
		{SQLServer(), "INSERT INTO [tr] ([consumer_group], [message_id], [topic_name], [ctime], [queue_id], [offset], [broker_name]) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7)"},
		{PostgreSQL(), `INSERT INTO "tr" ("consumer_group", "message_id", "topic_name", "ctime", "queue_id", "offset", "broker_name") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT ("message_id") DO NOTHING`},
	} {
		t.Run(tc.d.Name(), func(t *testing.T) {
			if got := tc.d.impl().claimSQL("tr"); got != tc.want {
				t.Errorf("claim SQL\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestSQLServerDriverNames: the "mssql" driver name rewrites ? into @pN and
// counts the parameters, so the dialect writes ? for it.
func TestSQLServerDriverNames(t *testing.T) {
	for _, tc := range []struct {
		driverName string
		want       string
	}{
		{"sqlserver", "INSERT INTO [tr] ([consumer_group], [message_id], [topic_name], [ctime], [queue_id], [offset], [broker_name]) VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @p7)"},
		{"mssql", "INSERT INTO [tr] ([consumer_group], [message_id], [topic_name], [ctime], [queue_id], [offset], [broker_name]) VALUES (?, ?, ?, ?, ?, ?, ?)"},
	} {
		t.Run(tc.driverName, func(t *testing.T) {
			c, err := sql.Open(tc.driverName, "sqlserver://u:p@127.0.0.1:1?database=db")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, opts := range [][]Option{nil, {WithDialect(SQLServer())}} {
				cfg, err := newConfig(append(opts, WithTable("tr")))
				if err != nil {
					t.Fatal(err)
				}
				co, err := newCore(cfg, c.Driver())
				if err != nil {
					t.Fatal(err)
				}
				if co.dialect.Name() != "sqlserver" || co.claimSQL != tc.want {
					t.Errorf("dialect %s claim SQL\n got %s\nwant %s", co.dialect.Name(), co.claimSQL, tc.want)
				}
				d := co.dialect.impl()
				for _, q := range []string{d.lookupSQL("tr"), d.purgeSQL("tr", 10)} {
					if strings.Contains(q, "@p") != (tc.driverName == "sqlserver") || strings.Contains(q, "?") == (tc.driverName == "sqlserver") {
						t.Errorf("%s: placeholders of %s", tc.driverName, q)
					}
				}
				// The schema check's queries: as many placeholders as
				// the arguments inspectSQLServer passes.
				for q, args := range map[string]int{sqlserverColumnsSQL(d): 2, sqlserverIndexesSQL(d): 1} {
					n := strings.Count(q, "?")
					if tc.driverName == "sqlserver" {
						n = strings.Count(q, "@p")
						if strings.Contains(q, "?") || args > 1 && !strings.Contains(q, fmt.Sprintf("@p%d", args)) {
							n = -1
						}
					}
					if n != args {
						t.Errorf("%s: %d placeholders for %d arguments in %s", tc.driverName, n, args, q)
					}
				}
			}
		})
	}
}

func TestPurgeAndLookupSQL(t *testing.T) {
	for _, tc := range []struct {
		d             Dialect
		purge, lookup string
	}{
		{MySQL(), "DELETE FROM `tr` WHERE `ctime` < ? ORDER BY `ctime` LIMIT 500", "SELECT `message_id` FROM `tr` WHERE `message_id` = ?"},
		{SQLServer(), "DELETE TOP (500) FROM [tr] WITH (READPAST, ROWLOCK) WHERE [ctime] < @p1", "SELECT [message_id] FROM [tr] WHERE [message_id] = @p1"},
		{PostgreSQL(), `DELETE FROM "tr" WHERE "id" IN (SELECT "id" FROM "tr" WHERE "ctime" < $1 ORDER BY "ctime" LIMIT 500 FOR UPDATE SKIP LOCKED)`, `SELECT "message_id" FROM "tr" WHERE "message_id" = $1`},
	} {
		t.Run(tc.d.Name(), func(t *testing.T) {
			if got := tc.d.impl().purgeSQL("tr", 500); got != tc.purge {
				t.Errorf("purge SQL\n got %s\nwant %s", got, tc.purge)
			}
			if got := tc.d.impl().lookupSQL("tr"); got != tc.lookup {
				t.Errorf("lookup SQL\n got %s\nwant %s", got, tc.lookup)
			}
		})
	}
}

func TestClaimArgs(t *testing.T) {
	d := Delivery{ConsumerGroup: "g", Key: "k", Topic: "t", BrokerName: "b", QueueID: 3, QueueOffset: 99}
	// want returns the expected arguments, with the text columns passed as
	// str makes them.
	want := func(str func(string) any) []any {
		return []any{str("g"), str("k#g"), str("t"), int64(1234), int64(3), int64(99), str("b")}
	}
	plain := func(s string) any { return s }
	for _, tc := range []struct {
		d    Dialect
		want []any
	}{
		{MySQL(), want(plain)},
		{PostgreSQL(), want(plain)},
		{SQLServer(), want(func(s string) any { return mssql.VarChar(s) })},
	} {
		t.Run(tc.d.Name(), func(t *testing.T) {
			args := tc.d.impl().claimArgs(d, d.MessageID(), 1234)
			if len(args) != len(tc.want) {
				t.Fatalf("%d args, want %d", len(args), len(tc.want))
			}
			for i, a := range args {
				if a.Ordinal != i+1 || a.Value != tc.want[i] {
					t.Errorf("arg %d = %#v (ordinal %d), want %#v", i+1, a.Value, a.Ordinal, tc.want[i])
				}
			}
		})
	}
}

func TestMigrationStatements(t *testing.T) {
	for _, tc := range []struct {
		d     Dialect
		count int
	}{
		{MySQL(), 1},
		{SQLServer(), 1},
		{PostgreSQL(), 3},
	} {
		t.Run(tc.d.Name(), func(t *testing.T) {
			stmts := migrationStatements(tc.d.impl(), "my_claims")
			if len(stmts) != tc.count {
				t.Fatalf("%d statements, want %d: %q", len(stmts), tc.count, stmts)
			}
			for _, s := range stmts {
				if strings.Contains(s, DefaultTable) || !strings.Contains(s, "my_claims") || strings.Contains(s, "--") || strings.HasSuffix(s, ";") {
					t.Errorf("statement not substituted or not clean: %s", s)
				}
			}
		})
	}
}

func TestParseMySQLDuplicate(t *testing.T) {
	for _, tc := range []struct {
		msg        string
		entry, key string
		ok         bool
	}{
		{"Duplicate entry 'k#g' for key 'uk_message_id'", "k#g", "uk_message_id", true},                     // MariaDB
		{"Duplicate entry 'k#g' for key 'transaction_record.uk_message_id'", "k#g", "uk_message_id", true},  // MySQL >= 8.0.19
		{"Duplicate entry 'a' for key 'b' for key 'uk_message_id'", "a' for key 'b", "uk_message_id", true}, // key text in the entry
		{"Duplicate entry '' for key 'PRIMARY'", "", "PRIMARY", true},
		{"Data too long for column 'message_id' at row 1", "", "", false},
	} {
		entry, key, ok := parseMySQLDuplicate(tc.msg)
		if entry != tc.entry || key != tc.key || ok != tc.ok {
			t.Errorf("parse(%q) = %q, %q, %v; want %q, %q, %v", tc.msg, entry, key, ok, tc.entry, tc.key, tc.ok)
		}
	}
}

func TestIsDuplicate(t *testing.T) {
	my := func(n uint16, msg string) error {
		return fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: n, Message: msg})
	}
	ms := func(n int32, msg string) error { return mssql.Error{Number: n, Message: msg} }
	for _, tc := range []struct {
		name string
		d    Dialect
		err  error
		uk   string
		want bool
	}{
		{"mariadb record key", MySQL(), my(1062, "Duplicate entry 'k#g' for key 'uk_message_id'"), "uk_message_id", true},
		{"mysql8 record key", MySQL(), my(1062, "Duplicate entry 'k#g' for key 'tr.uk_message_id'"), "uk_message_id", true},
		{"java table key name", MySQL(), my(1062, "Duplicate entry 'k#g' for key 'message_id'"), "message_id", true},
		{"unknown key name, entry is the id", MySQL(), my(1062, "Duplicate entry 'k#g' for key 'some_key'"), "uk_message_id", true},
		{"business key", MySQL(), my(1062, "Duplicate entry 'x' for key 'ref'"), "uk_message_id", false},
		{"deadlock", MySQL(), my(1213, "Deadlock found when trying to get lock; try restarting transaction"), "uk_message_id", false},
		{"sqlserver 2627 constraint", SQLServer(), ms(2627, "Violation of UNIQUE KEY constraint 'uk_tr_message_id'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (x#y)."), "uk_tr_message_id", true},
		{"sqlserver 2601 index", SQLServer(), ms(2601, "Cannot insert duplicate key row in object 'dbo.tr' with unique index 'ux_msg'. The duplicate key value is (x#y)."), "ux_msg", true},
		{"sqlserver duplicate value is the id", SQLServer(), ms(2601, "Cannot insert duplicate key row in object 'dbo.tr' with unique index 'other'. The duplicate key value is (k#g)."), "ux_msg", true},
		{"sqlserver business key", SQLServer(), ms(2627, "Violation of PRIMARY KEY constraint 'pk_acct'. Cannot insert duplicate key in object 'dbo.acct'. The duplicate key value is (7)."), "uk_tr_message_id", false},
		{"sqlserver in All", SQLServer(), mssql.Error{Number: 3621, Message: "The statement has been terminated.", All: []mssql.Error{{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uk_tr_message_id'."}, {Number: 3621}}}, "uk_tr_message_id", true},
		{"sqlserver deadlock", SQLServer(), ms(1205, "Transaction (Process ID 52) was deadlocked"), "uk_tr_message_id", false},
		{"postgres never by error", PostgreSQL(), &pgconn.PgError{Code: "23505", ConstraintName: "tr_uk_message_id"}, "tr_uk_message_id", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.impl().isDuplicate(tc.err, tc.uk, "k#g"); got != tc.want {
				t.Errorf("isDuplicate = %v, want %v", got, tc.want)
			}
		})
	}
	if !PostgreSQL().impl().dupByCount {
		t.Error("PostgreSQL must detect duplicates by rows affected (23505 aborts the transaction)")
	}
}

func TestClassify(t *testing.T) {
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "x"} }
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	ms := func(n int32) error { return mssql.Error{Number: n, Message: "x"} }
	const (
		retry   = kindRetryable
		aborts  = kindRetryable | kindAborts
		lost    = kindRetryable | kindAborts | kindConnLost
		timeout = kindRetryable | kindLockTimeout
	)
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tc := range []struct {
		name     string
		classify func(error) errKind
		err      error
		want     errKind
	}{
		{"mysql deadlock 1213", classifyMySQL, my(1213), aborts},
		{"mysql snapshot 1020", classifyMySQL, my(1020), aborts},
		// InnoDB rolls back the whole transaction when its lock structs
		// exhaust the buffer pool (row0mysql.cc, DB_LOCK_TABLE_FULL).
		{"mysql lock table full 1206", classifyMySQL, my(1206), aborts},
		{"mysql lock wait timeout 1205", classifyMySQL, my(1205), timeout},
		{"mysql nowait 3572", classifyMySQL, my(3572), retry},
		{"mariadb connection killed 1927", classifyMySQL, my(1927), lost},
		{"mysql duplicate 1062", classifyMySQL, my(1062), 0},
		{"mysql syntax 1064", classifyMySQL, my(1064), 0},
		{"mysql invalid conn", classifyMySQL, mysql.ErrInvalidConn, lost},
		{"mysql bad conn", classifyMySQL, driver.ErrBadConn, lost},
		{"mysql net error", classifyMySQL, opErr, lost},
		{"mysql unexpected EOF", classifyMySQL, io.ErrUnexpectedEOF, lost},
		{"pg serialization 40001", classifyPostgres, pg("40001"), aborts},
		{"pg deadlock 40P01", classifyPostgres, pg("40P01"), aborts},
		{"pg lock timeout 55P03", classifyPostgres, pg("55P03"), aborts},
		{"pg admin shutdown 57P01", classifyPostgres, pg("57P01"), lost},
		{"pg connection failure 08006", classifyPostgres, pg("08006"), lost},
		{"pg unique 23505", classifyPostgres, pg("23505"), 0},
		{"pg in failed tx 25P02", classifyPostgres, pg("25P02"), 0},
		{"pg conn closed", classifyPostgres, fmt.Errorf("x: %w", pgconn.ErrConnClosed), lost},
		{"pg EOF", classifyPostgres, fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), lost},
		{"sqlserver deadlock victim 1205", classifySQLServer, ms(1205), aborts},
		{"sqlserver snapshot conflict 3960", classifySQLServer, ms(3960), aborts},
		{"sqlserver lock timeout 1222", classifySQLServer, ms(1222), retry},
		{"sqlserver aborted transaction", classifySQLServer, mssql.Error{Number: 0, Message: "server does not have an active transaction: the transaction was aborted by the server, likely due to an error while SET XACT_ABORT is ON; any changes have been rolled back"}, aborts},
		{"sqlserver deadlock in All", classifySQLServer, mssql.Error{Number: 3621, All: []mssql.Error{{Number: 1205}, {Number: 3621}}}, aborts},
		{"sqlserver duplicate 2627", classifySQLServer, ms(2627), 0},
		{"sqlserver duplicate 2601", classifySQLServer, ms(2601), 0},
		{"sqlserver other error 0", classifySQLServer, ms(0), 0},
		{"sqlserver server error", classifySQLServer, mssql.ServerError{}, lost},
		{"sqlserver stream error", classifySQLServer, mssql.StreamError{InnerError: io.EOF}, lost},
		{"sqlserver bad conn", classifySQLServer, driver.ErrBadConn, lost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %b, want %b", tc.err, got, tc.want)
			}
			if got, want := IsRetryable(tc.err), tc.want&kindRetryable != 0; got != want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, want)
			}
		})
	}
}

func TestIsRetryableSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("%w (by: %w)", ErrTxAborted, &mysql.MySQLError{Number: 1213}), true},
		{fmt.Errorf("%w: %w", ErrCommitUnknown, mysql.ErrInvalidConn), true},
		{fmt.Errorf("%w: message id %q", ErrAlreadyConsumed, "k#g"), false},
		{ErrRollbackOnly, false},
		{ErrPartialCommit, false},
		{ErrInvalidDelivery, false},
		{ErrSchema, false},
		{context.Canceled, false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{errors.New("some other error"), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestDetectDialect(t *testing.T) {
	for _, tc := range []struct {
		drv  driver.Driver
		want string
	}{
		{&mysql.MySQLDriver{}, "mysql"},
		{mysql.MySQLDriver{}, "mysql"},
		{&mssql.Driver{}, "sqlserver"},
		{stdlib.GetDefaultDriver(), "postgres"},
	} {
		d, err := detectDialect(tc.drv)
		if err != nil || d.Name() != tc.want {
			t.Errorf("detectDialect(%T) = %v, %v; want %s", tc.drv, d, err, tc.want)
		}
	}
	if _, err := detectDialect(fakeDriver{}); err == nil || !strings.Contains(err.Error(), "WithDialect") {
		t.Errorf("unknown driver: %v, want an error pointing at WithDialect", err)
	}
}

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return nil, errors.New("no") }

func TestDuplicateEntryIs(t *testing.T) {
	id := "7F0000010B1C18B4AAC27A4C1D2E0001#GID_price_change_downstream_inventory"
	for _, tc := range []struct {
		entry string
		want  bool
	}{
		{id, true},
		{id[:61] + "...", true}, // MariaDB's %-.64T
		{"7F0000010B1C18B4AAC27A4C1D2E0002#GID_price_change_downstream_...", false},
		{"7F00...", false}, // too short to tell
		{"7F0000010B1C18B4", false},
		{strings.Repeat("x", 70), false},
		{"", false},
	} {
		if got := duplicateEntryIs(tc.entry, id); got != tc.want {
			t.Errorf("duplicateEntryIs(%q) = %v, want %v", tc.entry, got, tc.want)
		}
	}
	long := strings.Repeat("k", 200) + "#g"
	if !duplicateEntryIs(long[:192], long) {
		t.Error("MySQL's 192-character truncation without a marker is not recognised")
	}
}

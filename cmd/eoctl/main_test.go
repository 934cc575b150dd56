package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
)

// eoctl runs the command in process and returns its exit status and output.
func eoctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	t.Logf("eoctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	t.Setenv("EOCTL_DSN", "")
	dsn := "-dsn=root@tcp(127.0.0.1:1)/x"
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"no subcommand", nil, exitUsage, "usage: eoctl SUBCOMMAND"},
		{"help", []string{"-h"}, exitOK, "Subcommands:"},
		{"unknown subcommand", []string{"drop"}, exitUsage, `unknown subcommand "drop"`},
		{"subcommand help", []string{"purge", "-h"}, exitOK, "-older-than"},
		{"unknown flag", []string{"stats", "-force"}, exitUsage, "flag provided but not defined: -force"},
		{"no dsn", []string{"stats"}, exitUsage, "-dsn is required"},
		{"lookup needs two arguments", []string{"lookup", dsn, "k1"}, exitUsage, "want 2 arguments (KEY GROUP), got 1"},
		{"stats takes none", []string{"stats", dsn, "extra"}, exitUsage, "want 0 arguments"},
		{"purge needs -older-than", []string{"purge", dsn}, exitUsage, "-older-than must be a positive duration"},
		{"purge bad duration", []string{"purge", dsn, "-older-than", "3 weeks"}, exitUsage, "invalid value"},
		{"purge bad days", []string{"purge", dsn, "-older-than", "xd"}, exitUsage, "is not a number of days"},
		{"purge bad batch", []string{"purge", dsn, "-older-than", "3d", "-batch", "0"}, exitUsage, "-batch must be at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := eoctl(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if !strings.Contains(out+errOut, c.want) {
				t.Errorf("output lacks %q", c.want)
			}
		})
	}
}

func TestDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"3d": 72 * time.Hour, "90m": 90 * time.Minute, "0d": 0} {
		var d days
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
}

func TestBadConnection(t *testing.T) {
	cases := []struct{ name, driver, dsn, want string }{
		{"malformed dsn", "mysql", "not a dsn", "cannot connect with -driver mysql"},
		{"unknown driver", "oracle", "x", `unknown -driver "oracle"`},
		{"nothing listening", "pgx", "postgres://u@127.0.0.1:1/db?connect_timeout=1", "cannot connect with -driver pgx"},
		{"bad table name", "mysql", "root@tcp(127.0.0.1:1)/x", "invalid table name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"stats", "-driver", c.driver, "-dsn", c.dsn, "-timeout", "1s"}
			if c.name == "bad table name" {
				args = append(args, "-table", "x;drop")
			}
			code, _, errOut := eoctl(t, args...)
			if code != exitFailure || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut, c.want)
			}
		})
	}
}

// TestOnDatabases runs every subcommand against a table on the throwaway
// MariaDB and PostgreSQL: missing, migrated, populated, purged.
func TestOnDatabases(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		table := dbtest.UniqueName(t, "tr")
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
		common := []string{"-driver", e.Driver, "-dsn", e.DSN, "-table", table}
		sub := func(name string, rest ...string) []string {
			return append(append([]string{name}, common...), rest...)
		}

		for _, args := range [][]string{sub("stats"), sub("check"), sub("lookup", "k1", "g1"), sub("purge", "-older-than", "1h")} {
			code, _, errOut := eoctl(t, args...)
			if code != exitFailure || !strings.Contains(errOut, "table "+table+" does not exist in the database of the -dsn: create it with eoctl migrate") {
				t.Errorf("%s on a missing table: exit %d, stderr %q", args[0], code, errOut)
			}
		}
		if code, out, _ := eoctl(t, sub("migrate")...); code != exitOK || !strings.Contains(out, "ok: table "+table) {
			t.Fatalf("migrate: exit %d", code)
		}
		if code, out, _ := eoctl(t, sub("migrate")...); code != exitOK || !strings.Contains(out, "ok:") {
			t.Errorf("migrate again: exit %d", code)
		}
		if code, out, _ := eoctl(t, sub("check")...); code != exitOK || !strings.Contains(out, "ok: table "+table+" ("+e.Name+")") {
			t.Errorf("check: exit %d", code)
		}

		// Five records: g1 has two from ten days ago and one from now, g2
		// two from now.
		now := time.Now().UnixMilli()
		old := time.Now().Add(-240 * time.Hour).UnixMilli()
		offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`}[e.Name]
		for i, r := range []struct {
			group, key string
			ctime      int64
		}{{"g1", "k1", old}, {"g1", "k2", old}, {"g1", "k3", now}, {"g2", "k1", now}, {"g2", "k4", now}} {
			e.Exec(t, "INSERT INTO "+table+" (consumer_group, message_id, topic_name, ctime, queue_id, "+offset+", broker_name) VALUES (?, ?, ?, ?, ?, ?, ?)",
				r.group, r.key+"#"+r.group, "orders", r.ctime, 1, 100+i, "broker-a")
		}

		code, out, _ := eoctl(t, sub("stats")...)
		if code != exitOK {
			t.Fatalf("stats: exit %d", code)
		}
		for _, want := range []string{`GROUP +RECORDS +OLDEST +NEWEST`, `g1 +3 +` + millis(old) + ` +` + millis(now), `g2 +2 +` + millis(now),
			`\(all\) +5`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("stats lacks %s", want)
			}
		}

		code, out, _ = eoctl(t, sub("lookup", "k3", "g1")...)
		if code != exitOK || !regexp.MustCompile(`message_id: +k3#g1\n(.*\n)*offset: +102\nclaimed: +`+millis(now)).MatchString(out) {
			t.Errorf("lookup k3 g1: exit %d", code)
		}
		if code, out, _ := eoctl(t, sub("lookup", "k3", "g2")...); code != exitFailure || !strings.Contains(out, `not found: no record of message_id "k3#g2"`) {
			t.Errorf("lookup of a missing record: exit %d", code)
		}

		// Batches of one: the purge loops over chunks.
		code, out, _ = eoctl(t, sub("purge", "-older-than", "3d", "-batch", "1")...)
		if code != exitOK || !strings.Contains(out, "deleted 2 records") {
			t.Errorf("purge: exit %d", code)
		}
		if n := e.QueryInt(t, "SELECT COUNT(*) FROM "+table); n != 3 {
			t.Errorf("%d records left, want 3", n)
		}
		if code, out, _ := eoctl(t, sub("stats")...); code != exitOK || !regexp.MustCompile(`g1 +1 `).MatchString(out) {
			t.Errorf("stats after purge: exit %d", code)
		}
	})
}

// TestCheckCharset: check refuses a MySQL message_id that cannot store
// every key and prints the statement that fixes it.
func TestCheckCharset(t *testing.T) {
	for _, e := range dbtest.Envs(t) {
		if e.Name != "mysql" {
			continue
		}
		table := dbtest.UniqueName(t, "tr")
		e.CreateClaimTable(t, table, "varchar(255) CHARACTER SET latin1 NOT NULL UNIQUE")
		code, _, errOut := eoctl(t, "check", "-driver", e.Driver, "-dsn", e.DSN, "-table", table)
		if code != exitFailure || !strings.Contains(errOut, "latin1") || !strings.Contains(errOut, "Fix: ALTER TABLE `"+table+"` MODIFY `message_id` varchar(255) CHARACTER SET utf8mb4") {
			t.Errorf("check of a latin1 message_id: exit %d, stderr %q", code, errOut)
		}
		// The other subcommands work on it.
		if code, _, _ := eoctl(t, "stats", "-driver", e.Driver, "-dsn", e.DSN, "-table", table); code != exitOK {
			t.Errorf("stats on a latin1 message_id: exit %d", code)
		}
	}
}

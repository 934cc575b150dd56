package throwaway

import (
	"context"
	"database/sql"
	"os"
	"testing"
)

func TestServers(t *testing.T) {
	// Opt-in, as a plain go test must not install or start servers;
	// scripts/test.sh sets it.
	if os.Getenv("THROWAWAY_TEST") == "" {
		t.Skip("starts (and may apt-get install) MariaDB and PostgreSQL: set THROWAWAY_TEST=1 (scripts/test.sh does)")
	}
	for _, tc := range []struct {
		name, driver string
		start        func(context.Context) (*Server, error)
		query        string
	}{
		{"MariaDB", "mysql", MariaDB, "SELECT DATABASE()"},
		{"PostgreSQL", "pgx", PostgreSQL, "SELECT current_database()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Stop() })
			db, err := sql.Open(tc.driver, s.DSN())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var name string
			if err := db.QueryRow(tc.query).Scan(&name); err != nil {
				t.Fatal(err)
			}
			if name != "test" {
				t.Errorf("connected to database %q, want test", name)
			}
			db.Close()

			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := s.Stop(); err != nil {
				t.Errorf("second Stop: %v", err)
			}
			if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
				t.Errorf("data dir %s still there after Stop (%v)", s.dir, err)
			}
			select {
			case <-s.done:
			default:
				t.Error("server process still running after Stop")
			}
		})
	}
}

package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/dbtest"
	"github.com/b74fc070/rocketmq-exactlyonce/internal/memdb"
	// The tests run on every driver, through the packages that tell
	// mqdatasource about them.
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mssqldriver"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"
)

// TestNoDriverImported: mqdatasource links no SQL driver, and each driver
// package links only its driver, so a MySQL-only program does not link pgx
// or go-mssqldb.
func TestNoDriverImported(t *testing.T) {
	drivers := []string{"github.com/go-sql-driver/mysql", "github.com/jackc/pgx", "github.com/microsoft/go-mssqldb"}
	for pkg, want := range map[string]string{
		".":              "",
		"./mysqldriver":  drivers[0],
		"./pgxdriver":    drivers[1],
		"./mssqldriver":  drivers[2],
		"../exactlyonce": "",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, d := range drivers {
			if linked := strings.Contains(string(out), d+"\n") || strings.Contains(string(out), d+"/"); linked != (d == want) {
				t.Errorf("%s links %s: %v, want %v", pkg, d, linked, d == want)
			}
		}
	}
}

// TestCheckDriverPackage: a dialect whose errors only the driver's package
// can read is refused without it, naming the package.
func TestCheckDriverPackage(t *testing.T) {
	cases := []struct {
		d    Dialect
		drv  driver.Driver
		want string // the package named, "" for no error
	}{
		{MySQL(), &mysql.MySQLDriver{}, "mysqldriver"},
		{MySQL(), memdb.New().Driver(), "mysqldriver"}, // e.g. a wrapped connector
		{SQLServer(), memdb.New().Driver(), "mssqldriver"},
		{PostgreSQL(), &stdlib.Driver{}, "pgxdriver"},
		{PostgreSQL(), memdb.New().Driver(), ""}, // lib/pq, or a fake: SQLSTATE needs no package
	}
	for _, c := range cases {
		err := checkDriverPackage(c.d, c.drv, nil)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s on %T: %v, want nil", c.d.Name(), c.drv, err)
		case c.want != "" && (!errors.Is(err, ErrDriverPackage) || !strings.Contains(err.Error(), "mqdatasource/"+c.want+`"`)):
			t.Errorf("%s on %T: %v, want ErrDriverPackage naming %s", c.d.Name(), c.drv, err, c.want)
		}
	}
}

// TestBeginThroughDriverPackage: on pgx the delivery transaction is begun
// by pgxdriver's pipeline (BEGIN and the claim in one round trip); on MySQL
// by the claim itself (autocommit=0).
func TestBeginThroughDriverPackage(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, e *dbtest.Env) {
		table := dbtest.UniqueName(t, "tr")
		ds, err := Open(e.Driver, e.DSN, WithTable(table), WithMigrate())
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		t.Cleanup(func() { e.Exec(t, "DROP TABLE IF EXISTS "+table) })
		if got, want := ds.core.beginWith != nil, e.Name == "postgres"; got != want {
			t.Errorf("beginWith set: %v, want %v", got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var itx string
		res, err := ds.Deliver(ctx, Delivery{ConsumerGroup: "g", Key: "k1", Topic: "t", BrokerName: "b"}, func(ctx context.Context) error {
			s := scopeFromContext(ctx)
			itx = fmt.Sprintf("%T", s.txs[0].pc.itx)
			return nil
		})
		if res != Committed || err != nil {
			t.Fatalf("Deliver = %v, %v", res, err)
		}
		want := map[string]string{"postgres": "*pgxdriver.pgTx", "mysql": "*mqdatasource.implicitTx"}[e.Name]
		if itx != want {
			t.Errorf("the delivery's transaction is a %s, want %s", itx, want)
		}
	})
}

package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

var (
	//go:embed schema.sql
	schemaMySQL string
	//go:embed schema.postgres.sql
	schemaPostgres string
	//go:embed schema.sqlserver.sql
	schemaSQLServer string
)

// connectTimeout bounds every attempt to reach a server.
const connectTimeout = 10 * time.Second

// openDB opens the DataSource, checks that the server answers, creates
// transaction_record (Migrate) and the example's tables (schema*.sql).
func openDB(ctx context.Context, driver, dsn string) (*mqdatasource.DataSource, error) {
	switch driver {
	case "mysql", "pgx", "sqlserver":
	default:
		return nil, fmt.Errorf("unsupported -driver %q (want mysql, pgx or sqlserver)", driver)
	}
	// No schema check at Open: Migrate below creates the table first.
	ds, err := mqdatasource.Open(driver, dsn, mqdatasource.WithSchemaCheck(false))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := ds.DB().PingContext(ctx); err != nil {
		ds.Close()
		return nil, fmt.Errorf("cannot reach the %s database%s: %w", driver, dsnAddr(driver, dsn), err)
	}
	if err := ds.Migrate(ctx); err != nil {
		ds.Close()
		return nil, fmt.Errorf("create transaction_record: %w", err)
	}
	if err := createTables(ctx, ds); err != nil {
		ds.Close()
		return nil, err
	}
	return ds, nil
}

// dsnAddr returns " at host:port" of a DSN for error messages, or "".
func dsnAddr(driver, dsn string) string {
	if driver == "mysql" {
		if cfg, err := mysql.ParseDSN(dsn); err == nil && cfg.Addr != "" {
			return " at " + cfg.Addr
		}
		return ""
	}
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return " at " + u.Host
	}
	return ""
}

// createTables runs the statements of the dialect's schema file.
func createTables(ctx context.Context, ds *mqdatasource.DataSource) error {
	file, text := "schema.sql", schemaMySQL
	switch ds.Dialect().Name() {
	case "postgres":
		file, text = "schema.postgres.sql", schemaPostgres
	case "sqlserver":
		file, text = "schema.sqlserver.sql", schemaSQLServer
	}
	for _, stmt := range schemaStatements(text) {
		if _, err := ds.DB().ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	return nil
}

// schemaStatements splits a schema file into its statements, leaving out
// chunks of comments only.
func schemaStatements(text string) []string {
	var stmts []string
	for stmt := range strings.SplitSeq(text, ";\n") {
		if hasSQL(stmt) {
			stmts = append(stmts, stmt)
		}
	}
	return stmts
}

// hasSQL reports whether a chunk of a schema file has more than comments.
func hasSQL(chunk string) bool {
	for line := range strings.SplitSeq(chunk, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return true
		}
	}
	return false
}

// rebind turns the ? placeholders of q into the dialect's: $1, $2 ... for
// PostgreSQL (pgx), @p1, @p2 ... for SQL Server. sqlx knows each form by
// the names Dialect.Name returns. The queries of this program have no ?
// inside string literals.
func rebind(d mqdatasource.Dialect, q string) string { return sqlx.Rebind(sqlx.BindType(d.Name()), q) }

// emptyTables checks that the example's tables hold no rows, or empties them
// when reset is set: a verification only makes sense on a clean slate.
func emptyTables(ctx context.Context, ds *mqdatasource.DataSource, reset bool) error {
	if reset {
		for _, q := range []string{"DELETE FROM price_history", "DELETE FROM product"} {
			if _, err := ds.DB().ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}
	var n int64
	if err := ds.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM price_history").Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errors.New("table price_history is not empty: pass -reset to empty product and price_history first")
	}
	return nil
}

// seedProducts puts the products of the plan into the catalogue, with no
// price yet (version 0), unless they are there already.
func seedProducts(ctx context.Context, ds *mqdatasource.DataSource, products int) error {
	have := map[string]bool{}
	rows, err := ds.DB().QueryContext(ctx, "SELECT id FROM product")
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		have[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	insert := rebind(ds.Dialect(), "INSERT INTO product (id, price_cents, version, change_count) VALUES (?, 0, 0, 0)")
	for i := range products {
		if have[productID(i)] {
			continue
		}
		if _, err := ds.DB().ExecContext(ctx, insert, productID(i)); err != nil {
			return fmt.Errorf("seed products: %w", err)
		}
	}
	return nil
}

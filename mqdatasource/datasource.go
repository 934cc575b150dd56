package mqdatasource

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/backoff"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/internal/driverext"
)

// core is the configuration shared by a connector and every connection it
// opens.
type core struct {
	table     string
	dialect   Dialect // what runs: a variant of public for some drivers
	public    Dialect // what the user chose or was detected
	logger    *slog.Logger
	claimSQL  string
	lookupSQL string

	// Learned by CheckSchema; read by every connection. uniqueKey starts
	// as the migration file's name (newCore), so that the claim path does
	// not build it for every duplicate.
	uniqueKey       atomic.Pointer[string]
	idLen           atomic.Int64
	charsetWarnOnly bool // WithCharsetWarnOnly
	// keyColumn is message_id's character set and collation; nil until a
	// schema check ran (every key is then accepted).
	keyColumn atomic.Pointer[keyColumn]
	// rollbackOnTimeoutVar caches MySQL's innodb_rollback_on_timeout:
	// 0 unknown, 1 OFF, 2 ON.
	rollbackOnTimeoutVar atomic.Int32

	pool *pool // the delivery connections

	// beginWith begins a claimed transaction in one round trip, when the
	// driver's package can (pgxdriver); nil otherwise.
	beginWith func(ctx context.Context, conn driver.Conn, q string, args []driver.NamedValue, broken func()) (driver.Tx, int64, bool, error)
}

func newCore(cfg *config, drv driver.Driver) (*core, error) {
	d := cfg.dialect
	if d == nil {
		var err error
		if d, err = detectDialect(drv); err != nil {
			return nil, err
		}
	}
	// A wrapped connector (WithDialect) hides the driver's type: then the
	// package registered for the dialect.
	ext := driverext.Lookup(drv)
	if ext == nil {
		ext = driverext.Dialect(d.Name())
	}
	if err := checkDriverPackage(d, drv, ext); err != nil {
		return nil, err
	}
	public := d
	if d.impl() == sqlserverDialect && mssqlRewritesQueries(drv) {
		d = sqlserverQDialect
	}
	c := &core{
		public:  public,
		table:   cfg.table,
		dialect: d,
		logger:  cfg.logger,

		charsetWarnOnly: cfg.charsetWarnOnly,
	}
	if ext != nil && ext.Dialect == d.Name() {
		c.beginWith = ext.BeginWith
	}
	c.claimSQL = d.impl().claimSQL(c.table)
	c.lookupSQL = d.impl().lookupSQL(c.table)
	uk := d.impl().defaultUniqueKey(c.table)
	c.uniqueKey.Store(&uk)
	return c, nil
}

// uk returns the name of the unique key on message_id.
func (c *core) uk() string { return *c.uniqueKey.Load() }

// validate checks d, whose message id is id, before any SQL runs: the
// checks of Delivery.Validate, but with the message id's length held to the
// column rather than to MaxMessageIDLen. The length is the one CheckSchema
// learned, in the column's unit (bytes on SQL Server), so a wider column
// admits longer ids; a column of unlimited length (-1, varchar(max)) has no
// limit. When it is unknown (no schema check ran, or the catalog gives none:
// PostgreSQL text) it is MaxMessageIDLen, so an id the migration file's
// column cannot hold is refused here rather than by the server. An id with
// a character the column's character set cannot store (as CheckSchema
// learned it) is refused with ErrUnstorableKey: the server would replace
// it by '?' or fail the claim.
func (c *core) validate(d Delivery, id string) error {
	if err := d.validateShape(); err != nil {
		return err
	}
	limit := c.idLen.Load()
	if limit < 0 {
		return nil
	}
	n, unit := int64(utf8.RuneCountInString(id)), "characters"
	if c.dialect.impl().idLenInBytes {
		n, unit = int64(len(id)), "bytes"
	}
	switch {
	case limit == 0 && n > MaxMessageIDLen:
		return fmt.Errorf("%w: message id %q is %d %s, over MaxMessageIDLen (%d), the limit while the length of %s.message_id is unknown", ErrInvalidDelivery, truncate(id, 40), n, unit, MaxMessageIDLen, c.table)
	case limit > 0 && n > limit:
		return fmt.Errorf("%w: message id %q is %d %s, column %s.message_id holds %d", ErrInvalidDelivery, truncate(id, 40), n, unit, c.table, limit)
	}
	return c.keyColumn.Load().checkFits(c.table, id)
}

// openCheckTimeout bounds the schema check of Open and OpenConnector
// (connecting and retrying included).
const openCheckTimeout = 30 * time.Second

// DataSource is a *sql.DB whose work with a delivery's context runs in the
// delivery's transaction, which begins by claiming the delivery in
// transaction_record (see Deliver and the package documentation).
//
// A DataSource is safe for concurrent use, like the *sql.DB it holds.
type DataSource struct {
	db   *sql.DB
	core *core

	// lookup is IsConsumed's statement, prepared on first use rather than
	// by Open (which may skip the schema check and not touch the
	// database). Executing the query text on the pool would cost, with
	// go-sql-driver/mysql's default DSN, a prepare and a close per call;
	// a *sql.Stmt is prepared once per pool connection, as database/sql
	// re-prepares it on each connection it runs on. lookupLock, a
	// semaphore of one, serialises its creation with Close, so that no
	// statement is prepared after Close and left open; unlike a mutex, a
	// caller waiting for another's prepare gives up when its own context
	// ends.
	lookupLock chan struct{}
	lookup     atomic.Pointer[sql.Stmt]
}

// Open is OpenContext with a context that ends after 30 seconds.
func Open(driverName, dsn string, opts ...Option) (*DataSource, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openCheckTimeout)
	defer cancel()
	return OpenContext(ctx, driverName, dsn, opts...)
}

// OpenContext opens a DataSource like sql.Open: driverName is "mysql"
// (go-sql-driver/mysql), "sqlserver" or "mssql" (microsoft/go-mssqldb), or
// "pgx" (jackc/pgx/v5/stdlib); this package imports none of them: the
// program imports mysqldriver, mssqldriver or pgxdriver, which registers the
// driver and tells this package about it (without it OpenContext fails with
// ErrDriverPackage). Other registered drivers work with WithDialect. Unless
// WithSchemaCheck(false) is given, it connects and runs CheckSchema (or
// Migrate, with WithMigrate), and fails if the claim table is missing or has
// the wrong shape.
//
// A transient failure (see IsTransient: the server refuses connections, is
// starting up, or the connection drops) is retried with capped exponential
// back-off (0.1 s doubling to 5 s) until ctx ends; OpenContext then fails
// with an error that wraps ctx's cause and the last failure. A permanent
// failure (a malformed DSN, an authentication failure, an unknown database,
// a missing or malformed table) fails at once. Each retry is logged at Warn
// through WithLogger's logger. The DataSource does not keep ctx.
func OpenContext(ctx context.Context, driverName, dsn string, opts ...Option) (*DataSource, error) {
	probe, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	_ = probe.Close()
	var c driver.Connector
	if dc, ok := drv.(driver.DriverContext); ok {
		if c, err = dc.OpenConnector(dsn); err != nil {
			return nil, err
		}
	} else {
		c = dsnConnector{dsn: dsn, drv: drv}
	}
	return OpenConnectorContext(ctx, c, opts...)
}

// OpenConnector is OpenConnectorContext with a context that ends after 30
// seconds.
func OpenConnector(c driver.Connector, opts ...Option) (*DataSource, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openCheckTimeout)
	defer cancel()
	return OpenConnectorContext(ctx, c, opts...)
}

// OpenConnectorContext opens a DataSource on a connector of the database
// driver (mysql.NewConnector, mssql.NewConnector, pgx stdlib.GetConnector).
// If c implements io.Closer, Close closes it. Unless WithSchemaCheck(false)
// is given, it connects and runs CheckSchema (or Migrate), retrying
// transient failures until ctx ends, as OpenContext does.
func OpenConnectorContext(ctx context.Context, c driver.Connector, opts ...Option) (*DataSource, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	wc, err := newConnector(c, cfg)
	if err != nil {
		return nil, err
	}
	ds := &DataSource{db: sql.OpenDB(wc), core: wc.core, lookupLock: make(chan struct{}, 1)}
	if cfg.schemaCheck || cfg.migrate {
		check := ds.CheckSchema
		if cfg.migrate {
			check = ds.Migrate
		}
		err := backoff.Retry(ctx, "mqdatasource: open", IsTransient, check,
			func(attempt int, wait time.Duration, err error) {
				cfg.logger.LogAttrs(ctx, slog.LevelWarn, "mqdatasource: database not ready, retrying",
					slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.Any("error", err))
			})
		if err != nil {
			_ = ds.db.Close()
			return nil, err
		}
	}
	return ds, nil
}

// NewConnector wraps a connector of the database driver so that every
// connection it opens claims the delivery in a transaction's context. Use it
// to build the *sql.DB yourself (sql.OpenDB) or to hand the connector to a
// library; OpenConnector does the same and adds the schema check and the
// DataSource helpers. NewConnector does not touch the database.
func NewConnector(c driver.Connector, opts ...Option) (driver.Connector, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newConnector(c, cfg)
}

// DB returns the *sql.DB. Hand it to sqlx (sqlx.NewDb(ds.DB(), "mysql")),
// GORM (gorm.Open(mysql.New(mysql.Config{Conn: ds.DB()}))), bun or ent:
// their transactions begun with a delivery context get the claim.
func (ds *DataSource) DB() *sql.DB { return ds.db }

// BeginTx is ds.DB().BeginTx. With a delivery's context (inside Deliver)
// the transaction is the delivery's: its first use of ds claims the
// delivery, its Commit ends nothing and its Rollback marks the delivery
// rollback-only. It returns:
//   - an error wrapping ErrAlreadyConsumed when the delivery's message is
//     already recorded for its consumer group;
//   - an error wrapping ErrInvalidDelivery, before any SQL, for a delivery
//     that cannot be claimed (see ErrInvalidDelivery);
//   - an error wrapping ErrTxOptions for an isolation level other than the
//     delivery transaction's;
//   - otherwise the database's error, unchanged (see IsRetryable).
func (ds *DataSource) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return ds.db.BeginTx(ctx, opts)
}

// Close closes the statements the DataSource prepared and the *sql.DB (and
// the driver's connector if it is an io.Closer).
func (ds *DataSource) Close() error {
	ds.lookupLock <- struct{}{}
	defer func() { <-ds.lookupLock }()
	var err error
	if s := ds.lookup.Load(); s != nil {
		err = s.Close()
	}
	return errors.Join(err, ds.db.Close())
}

// Table returns the claim table's name.
func (ds *DataSource) Table() string { return ds.core.table }

// Dialect returns the SQL dialect in use.
func (ds *DataSource) Dialect() Dialect { return ds.core.public }

// ValidateDelivery reports, without any SQL, whether BeginTx could claim d:
// the checks of Delivery.Validate, but with the message id's length held to
// the message_id column as the schema check found it (in bytes on SQL
// Server; MaxMessageIDLen when no check ran, no limit for varchar(max)), so
// a wider column admits ids longer than MaxMessageIDLen, and an id with a
// character the column's character set cannot store is refused (the error
// then wraps ErrUnstorableKey too). The error wraps ErrInvalidDelivery. Consumers call it before running a
// handler whose transaction could only fail.
func (ds *DataSource) ValidateDelivery(d Delivery) error {
	return ds.core.validate(d, d.MessageID())
}

// IsConsumed reports whether d's message is recorded as consumed by its
// consumer group: a committed claim exists whose message_id is d's byte for
// byte. A record that the column only takes for d's (a case-insensitive
// collation) is not d's: IsConsumed then returns false and a
// *KeyCollisionError (ErrKeyCollision). It is a pre-check, for skipping
// work that needs no transaction; the claim in BeginTx remains the guard.
// It runs outside any transaction and ignores a delivery in ctx; its
// statement is prepared once per connection of the pool. It reads
// at the pool's isolation level: under READ UNCOMMITTED (MySQL, SQL
// Server) it would also see the claim of a transaction still open, which
// may yet roll back; use READ COMMITTED or stronger for the sessions.
func (ds *DataSource) IsConsumed(ctx context.Context, d Delivery) (bool, error) {
	id := d.MessageID()
	if err := ds.core.validate(d, id); err != nil {
		return false, err
	}
	// Both the prepare and each execution get ctx without its delivery: a
	// connection routes a statement by the context it is prepared or run
	// with, and would otherwise claim the delivery and read in its
	// transaction.
	ctx = WithoutDelivery(ctx)
	lookup, err := ds.lookupStmt(ctx)
	if err != nil {
		return false, err
	}
	rows, err := lookup.QueryContext(ctx, ds.core.dialect.impl().stringArg(id))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	other := ""
	for rows.Next() {
		var stored string
		if err := rows.Scan(&stored); err != nil {
			return false, err
		}
		if stored == id {
			return true, nil
		}
		other = stored
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	if other != "" {
		return false, ds.core.collision(id, other)
	}
	return false, nil
}

// lookupStmt returns the pre-check's prepared statement, preparing it with
// ctx on first use. A failed prepare is not kept: the next call tries again.
func (ds *DataSource) lookupStmt(ctx context.Context) (*sql.Stmt, error) {
	if s := ds.lookup.Load(); s != nil {
		return s, nil
	}
	select {
	case ds.lookupLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-ds.lookupLock }()
	if s := ds.lookup.Load(); s != nil {
		return s, nil
	}
	s, err := ds.db.PrepareContext(ctx, ds.core.lookupSQL)
	if err != nil {
		return nil, err
	}
	ds.lookup.Store(s)
	return s, nil
}

// Purge deletes the claim records older than before (by ctime, the claim
// time) in chunks of at most WithPurgeBatchSize rows (default 1000), each
// chunk its own short statement, until a chunk deletes fewer rows than the
// batch size or ctx ends. It returns how many rows it deleted. Many
// processes can purge at once: PostgreSQL and SQL Server skip rows another
// purge has locked; MySQL chunks wait for each other, and a deadlock between
// them is retried. A record must be kept longer than a message can be
// redelivered (the Java client keeps 3 days): a purged record no longer
// stops a duplicate.
func (ds *DataSource) Purge(ctx context.Context, before time.Time, opts ...PurgeOption) (int64, error) {
	pc := purgeConfig{batch: DefaultPurgeBatchSize}
	for _, o := range opts {
		if o != nil {
			o.applyPurge(&pc)
		}
	}
	if pc.batch < 1 {
		pc.batch = DefaultPurgeBatchSize
	}
	ctx = WithoutDelivery(ctx)
	query := ds.core.dialect.impl().purgeSQL(ds.core.table, pc.batch)
	cutoff := before.UnixMilli()
	var total int64
	retries := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := ds.db.ExecContext(ctx, query, cutoff)
		if err != nil {
			if IsRetryable(err) && retries < 5 && ctx.Err() == nil {
				retries++
				continue
			}
			return total, fmt.Errorf("mqdatasource: purging %s: %w", ds.core.table, err)
		}
		retries = 0
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(pc.batch) {
			return total, nil
		}
	}
}

package mqdatasource

import (
	"fmt"
	"log/slog"
	"regexp"
)

// DefaultTable is the name of the claim table when WithTable is not given:
// the table name of the Java ExactlyOnceConsumer.
const DefaultTable = "transaction_record"

// DefaultPurgeBatchSize is the number of rows Purge deletes per statement
// when WithPurgeBatchSize is not given.
const DefaultPurgeBatchSize = 1000

// An Option configures Open, OpenConnector and NewConnector.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	table                string
	dialect              Dialect
	schemaCheck          bool
	logger               *slog.Logger
	maxIdleDeliveryConns int
	migrate              bool
	charsetWarnOnly      bool
}

func newConfig(opts []Option) (*config, error) {
	c := &config{table: DefaultTable, schemaCheck: true, maxIdleDeliveryConns: DefaultMaxIdleDeliveryConns}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	if err := ValidateTableName(c.table); err != nil {
		return nil, err
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c, nil
}

// WithTable sets the name of the claim table. The default is
// "transaction_record". The name must be a plain identifier (see
// ValidateTableName); anything else makes Open fail with ErrInvalidTableName
// before any SQL runs. Schema-qualified names are not accepted: put the table
// in the database (MySQL), a schema of search_path (PostgreSQL), or the
// default schema or dbo (SQL Server) of the connection.
func WithTable(name string) Option {
	return optionFunc(func(c *config) { c.table = name })
}

// WithDialect sets the SQL dialect instead of detecting it from the driver.
// The default is detected: go-sql-driver/mysql is MySQL(), microsoft/go-mssqldb
// is SQLServer(), jackc/pgx stdlib (and lib/pq) is PostgreSQL().
func WithDialect(d Dialect) Option {
	return optionFunc(func(c *config) { c.dialect = d })
}

// WithSchemaCheck turns the schema check at Open and OpenConnector on or
// off. The default is on: Open connects, runs CheckSchema, and fails with a
// *SchemaError (wrapping ErrSchema) naming the problem and the migration file
// when the claim table is missing or has the wrong shape, or with the
// connection error when the database cannot be reached within 30 seconds. Turn it off to
// open without touching the database (sql.Open semantics); then call
// CheckSchema or Migrate yourself.
func WithSchemaCheck(enabled bool) Option {
	return optionFunc(func(c *config) { c.schemaCheck = enabled })
}

// WithLogger sets the logger for warnings about the schema (for example a
// case-insensitive collation on message_id). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// A PurgeOption configures Purge.
type PurgeOption interface{ applyPurge(*purgeConfig) }

type purgeOptionFunc func(*purgeConfig)

func (f purgeOptionFunc) applyPurge(c *purgeConfig) { f(c) }

type purgeConfig struct {
	batch int
}

// WithPurgeBatchSize sets how many rows each DELETE statement of Purge
// removes at most. The default is DefaultPurgeBatchSize (1000). Values below 1
// mean the default.
func WithPurgeBatchSize(n int) PurgeOption {
	return purgeOptionFunc(func(c *purgeConfig) { c.batch = n })
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidateTableName reports whether name can be used as the claim table's
// name: a plain identifier of ASCII letters, digits and underscores, not
// starting with a digit, at most 64 characters. The error wraps
// ErrInvalidTableName. Only such names are ever put into SQL text.
func ValidateTableName(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("%w: %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]{0,63})", ErrInvalidTableName, truncate(name, 80))
	}
	return nil
}

// WithMaxIdleDeliveryConns sets how many delivery connections a DataSource
// keeps open while no delivery uses them. A delivery runs its transaction
// on a connection of its own, outside the *sql.DB's pool (see Deliver), so
// a consumer holds one per message in flight beside the pool's; the
// default, DefaultMaxIdleDeliveryConns, keeps those of rocketmq-client-go's
// default 20 consuming goroutines. Connections idle for 5 minutes are
// closed. n < 0 is taken as 0.
func WithMaxIdleDeliveryConns(n int) Option {
	return optionFunc(func(c *config) { c.maxIdleDeliveryConns = max(n, 0) })
}

// WithMigrate makes Open and OpenConnector create the claim table when it
// does not exist (DataSource.Migrate) before the schema check, so a service
// starts on an empty database. The default is off: the table is created by
// your migrations (see the schema package).
func WithMigrate() Option {
	return optionFunc(func(c *config) { c.migrate = true })
}

// WithCharsetWarnOnly makes the schema check accept a message_id column
// whose character set cannot store every key (MySQL latin1 or utf8/utf8mb3,
// as in the Java ExactlyOnceConsumer's table; a PostgreSQL database not in
// UTF8; a SQL Server varchar of a code page), logging the problem and the
// statement that fixes it at Error level at every check instead of failing.
// Use it for a table shared with the Java client until it is altered. The
// default is off: Open and CheckSchema fail with a *SchemaError. Either
// way, a delivery whose message id has a character the column cannot store
// is refused before its handler runs (ErrUnstorableKey, which wraps
// ErrInvalidDelivery), never stored as '?' or taken for another message.
func WithCharsetWarnOnly() Option {
	return optionFunc(func(c *config) { c.charsetWarnOnly = true })
}

// Command eoctl inspects and maintains the transaction_record table in which
// the exactlyonce consumers record the messages they applied.
//
// Usage:
//
//	eoctl check   [flags]                         check the table's schema and character set
//	eoctl migrate [flags]                         create the table if it does not exist, then check it
//	eoctl stats   [flags]                         records per consumer group, oldest and newest
//	eoctl lookup  [flags] KEY GROUP               the record of one message for one group
//	eoctl purge   [flags] -older-than DURATION    delete records older than DURATION
//
// Every subcommand takes:
//
//	-driver name   database/sql driver: mysql, pgx or sqlserver (default mysql)
//	-dsn string    data source name in the driver's form (default $EOCTL_DSN)
//	-table name    the record table (default transaction_record)
//	-timeout d     give up connecting and running after d (default 30s)
//
// purge also takes -batch n, the rows deleted per statement (default 1000).
// It deletes in short chunks (mqdatasource.DataSource.Purge), so it is safe
// while consumers run; keep records longer than a message can be redelivered
// (the broker retries for about 5 hours; the Java client keeps 3 days), or a
// redelivery applies twice. DURATION is a Go duration (72h) or days (3d).
//
// check prints the statement that fixes a message_id column whose character
// set cannot store every key. lookup takes the message's dedupe key (the
// EXTEND_UNIQ_INFO property, else the message id, as exactlyonce.DefaultKey)
// and the consumer group.
//
// Exit status: 0 on success, 1 on a failure (a problem found by check, no
// record found by lookup, a database error), 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
	// The drivers, and what mqdatasource needs to know about them.
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mssqldriver" // "sqlserver"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver" // "mysql"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"   // "pgx"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: eoctl SUBCOMMAND [flags] [args]

Subcommands:
  check     check the table's schema and character set
  migrate   create the table if it does not exist, then check it
  stats     records per consumer group, oldest and newest
  lookup    KEY GROUP: the record of one message for one group
  purge     -older-than DURATION: delete older records in bounded chunks

Run eoctl SUBCOMMAND -h for its flags.
`

// command is one subcommand: its argument names for the help, how many
// arguments it takes, whether its table must pass the schema check when
// opened, and what it does.
type command struct {
	args    string
	nargs   int
	summary string
	// schemaCheck: open with the schema check (a missing table fails
	// with a hint to migrate), lenient about the character set, which
	// check reports and the others do not depend on.
	schemaCheck bool
	// flags adds the subcommand's own flags, parsed into o, and returns
	// what validates them after parsing.
	flags func(fs *flag.FlagSet, o *options) func() error
	do    func(ctx context.Context, e *env, args []string) error
}

// env is what a subcommand runs with.
type env struct {
	ds     *mqdatasource.DataSource
	stdout io.Writer
	opts   options
}

// options are the subcommands' own flags.
type options struct {
	olderThan time.Duration
	batch     int
}

var commands = map[string]command{
	"check":   {summary: "check the table's schema and character set", do: check},
	"migrate": {summary: "create the table if it does not exist, then check it", do: migrate},
	"stats":   {summary: "records per consumer group, oldest and newest", schemaCheck: true, do: stats},
	"lookup":  {args: "KEY GROUP", nargs: 2, summary: "the record of message KEY for consumer GROUP", schemaCheck: true, do: lookup},
	"purge":   {summary: "delete records older than -older-than, in bounded chunks", schemaCheck: true, flags: purgeFlags, do: purge},
}

// errNotFound makes lookup exit 1 without another message.
var errNotFound = errors.New("no record")

// run runs eoctl with args (without the program name) and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	name := args[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "eoctl: unknown subcommand %q\n%s", name, usage)
		return exitUsage
	}

	fs := flag.NewFlagSet("eoctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	driverName := fs.String("driver", "mysql", "database/sql driver: mysql, pgx or sqlserver")
	// Not os.Getenv as the default: -h would print the password.
	dsn := fs.String("dsn", "", "data source name in the driver's form (default $EOCTL_DSN)")
	table := fs.String("table", mqdatasource.DefaultTable, "the record table")
	timeout := fs.Duration("timeout", 30*time.Second, "give up connecting and running after this long")
	e := &env{stdout: stdout}
	validate := func() error { return nil }
	if cmd.flags != nil {
		validate = cmd.flags(fs, &e.opts)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: eoctl %s [flags] %s\n\n%s.\n\nFlags:\n", name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "eoctl %s: %s\n", name, fmt.Sprintf(format, a...))
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() != cmd.nargs {
		return usageErr("want %d arguments (%s), got %d", cmd.nargs, cmd.args, fs.NArg())
	}
	if *dsn == "" {
		*dsn = os.Getenv("EOCTL_DSN")
	}
	if *dsn == "" {
		return usageErr("-dsn is required (or set EOCTL_DSN)")
	}
	if err := validate(); err != nil {
		return usageErr("%v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eoctl %s: %v\n", name, err)
		return exitFailure
	}
	opts := []mqdatasource.Option{
		mqdatasource.WithTable(*table),
		mqdatasource.WithSchemaCheck(cmd.schemaCheck),
		mqdatasource.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	if cmd.schemaCheck {
		opts = append(opts, mqdatasource.WithCharsetWarnOnly())
	}
	ds, err := mqdatasource.OpenContext(ctx, *driverName, *dsn, opts...)
	if err != nil {
		return fail(explainOpen(err, *driverName, *table))
	}
	defer ds.Close()
	e.ds = ds
	if err := cmd.do(ctx, e, fs.Args()); err != nil {
		if errors.Is(err, errNotFound) {
			return exitFailure
		}
		return fail(err)
	}
	return exitOK
}

// explainOpen turns a failure to open into an error that says what to do.
func explainOpen(err error, driverName, table string) error {
	var se *mqdatasource.SchemaError
	switch {
	case errors.As(err, &se) && se.Missing():
		return fmt.Errorf("table %s does not exist in the database of the -dsn: create it with eoctl migrate", table)
	case errors.Is(err, mqdatasource.ErrInvalidTableName):
		return err
	case strings.Contains(err.Error(), "unknown driver"):
		return fmt.Errorf("unknown -driver %q: want mysql, pgx or sqlserver", driverName)
	}
	return fmt.Errorf("cannot connect with -driver %s and the -dsn given: %w", driverName, err)
}

// purgeFlags adds purge's flags.
func purgeFlags(fs *flag.FlagSet, o *options) func() error {
	fs.Var((*days)(&o.olderThan), "older-than", "delete records claimed longer ago than this: a Go duration (72h) or days (3d); required")
	fs.IntVar(&o.batch, "batch", mqdatasource.DefaultPurgeBatchSize, "rows deleted per statement")
	return func() error {
		switch {
		case o.olderThan <= 0:
			return errors.New("-older-than must be a positive duration, e.g. 72h or 3d")
		case o.batch < 1:
			return errors.New("-batch must be at least 1")
		}
		return nil
	}
}

// days is a flag.Value for a duration that also accepts a whole number of
// days ("3d"), which time.ParseDuration does not.
type days time.Duration

func (d *days) String() string { return time.Duration(*d).String() }

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("%q is not a number of days", s)
		}
		*d = days(time.Duration(v) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	*d = days(v)
	return err
}

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// check runs the schema check, strict about the character set, and prints
// what is wrong and how to fix it.
func check(ctx context.Context, e *env, _ []string) error {
	if err := e.ds.CheckSchema(ctx); err != nil {
		var se *mqdatasource.SchemaError
		if errors.As(err, &se) && se.Missing() {
			return fmt.Errorf("table %s does not exist in the database of the -dsn: create it with eoctl migrate", e.ds.Table())
		}
		return err
	}
	fmt.Fprintf(e.stdout, "ok: table %s (%s) has the schema the claim needs\n", e.ds.Table(), e.ds.Dialect().Name())
	return nil
}

// migrate creates the table if it is missing, and checks it.
func migrate(ctx context.Context, e *env, _ []string) error {
	if err := e.ds.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ok: table %s (%s) is ready\n", e.ds.Table(), e.ds.Dialect().Name())
	return nil
}

// stats prints, per consumer group, the number of records and the claim
// times of the oldest and newest.
func stats(ctx context.Context, e *env, _ []string) error {
	rows, err := e.ds.DB().QueryContext(ctx, "SELECT consumer_group, COUNT(*), MIN(ctime), MAX(ctime) FROM "+
		e.ds.Table()+" GROUP BY consumer_group ORDER BY consumer_group")
	if err != nil {
		return fmt.Errorf("reading %s: %w", e.ds.Table(), err)
	}
	defer rows.Close()
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GROUP\tRECORDS\tOLDEST\tNEWEST")
	var total int64
	for rows.Next() {
		var (
			group            string
			n                int64
			oldest, youngest int64
		)
		if err := rows.Scan(&group, &n, &oldest, &youngest); err != nil {
			return err
		}
		total += n
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", group, n, millis(oldest), millis(youngest))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Fprintf(w, "(all)\t%d\t\t\n", total)
	return w.Flush()
}

// lookup prints the record of one message for one group, or fails with
// errNotFound after saying so.
func lookup(ctx context.Context, e *env, args []string) error {
	d := mqdatasource.Delivery{Key: args[0], ConsumerGroup: args[1]}
	name := e.ds.Dialect().Name()
	offset := map[string]string{"mysql": "`offset`", "postgres": `"offset"`, "sqlserver": "[offset]"}[name]
	q := sqlx.Rebind(sqlx.BindType(name), "SELECT topic_name, broker_name, queue_id, "+offset+
		", ctime FROM "+e.ds.Table()+" WHERE message_id = ?")
	var (
		topic, broker string
		queue         int
		off, ctime    int64
	)
	err := e.ds.DB().QueryRowContext(ctx, q, d.MessageID()).Scan(&topic, &broker, &queue, &off, &ctime)
	if errors.Is(err, sql.ErrNoRows) {
		fmt.Fprintf(e.stdout, "not found: no record of message_id %q: group %s has not applied message %s (or its record was purged)\n",
			d.MessageID(), d.ConsumerGroup, d.Key)
		return errNotFound
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", e.ds.Table(), err)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"message_id", d.MessageID()}, {"topic", topic}, {"broker", broker},
		{"queue", fmt.Sprint(queue)}, {"offset", fmt.Sprint(off)}, {"claimed", millis(ctime)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
	}
	return w.Flush()
}

// purge deletes the records older than -older-than.
func purge(ctx context.Context, e *env, _ []string) error {
	before := time.Now().Add(-e.opts.olderThan)
	n, err := e.ds.Purge(ctx, before, mqdatasource.WithPurgeBatchSize(e.opts.batch))
	if err != nil {
		return fmt.Errorf("deleted %d records, then: %w", n, err)
	}
	fmt.Fprintf(e.stdout, "deleted %d records claimed before %s\n", n, before.UTC().Format(time.RFC3339))
	return nil
}

// millis formats a ctime, epoch milliseconds, in UTC.
func millis(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

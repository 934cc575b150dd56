package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

// maxProblems is how many problems a report lists.
const maxProblems = 10

// Report is the outcome of a run. Counters that a process cannot know (a
// verifier run on its own knows nothing of deliveries) are -1.
type Report struct {
	Products    int   `json:"products"`
	ChangesSent int64 `json:"changes_sent"` // distinct changes

	// Duplicates injected, by source.
	Resends          int64 `json:"resends"`           // the producer sent a change again, as a new message
	BrokerDuplicates int64 `json:"broker_duplicates"` // the broker stored a sent message twice
	Rewound          int64 `json:"rewound"`           // changes applied before the offset rewind, so delivered again
	Restarts         int   `json:"restarts"`          // consumer restarts (their redeliveries are not counted)

	// From the consumers' exactlyonce.Stats.
	Deliveries int64 `json:"deliveries"` // messages handed to the listeners
	Skipped    int64 `json:"skipped"`    // duplicates acknowledged without applying
	Applied    int64 `json:"applied"`    // transactions committed
	Retried    int64 `json:"retried"`    // failed attempts, retried

	// From the database.
	Records    int64    `json:"records"`    // transaction_record rows of the group
	Mismatches int      `json:"mismatches"` // products (or record counts) that are wrong
	Problems   []string `json:"problems,omitempty"`
}

// injected is the number of duplicate messages injected on purpose.
func (r *Report) injected() int64 {
	return max(r.Resends, 0) + max(r.BrokerDuplicates, 0) + max(r.Rewound, 0)
}

// addStats copies the consumers' counters into the report.
func (r *Report) addStats(s *exactlyonce.Stats) {
	r.Deliveries = s.Messages()
	r.Skipped = s.Count(exactlyonce.OutcomeSkippedCache) + s.Count(exactlyonce.OutcomeSkippedTable) +
		s.Count(exactlyonce.OutcomeDuplicate)
	r.Applied = s.Count(exactlyonce.OutcomeProcessed)
	r.Retried = s.Count(exactlyonce.OutcomeFailed) + s.Count(exactlyonce.OutcomePanic) +
		s.Count(exactlyonce.OutcomeNotRun)
}

func (r *Report) problem(format string, args ...any) {
	r.Mismatches++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// verify reads the database and checks every product of the plan: its final
// price is the price of its last change, it counted exactly Changes changes,
// and its history has one row per version, in version order. It also checks
// that the group has one transaction_record row per change.
func verify(ctx context.Context, ds *mqdatasource.DataSource, pl plan, group string, r *Report) error {
	r.Products = pl.Products
	r.ChangesSent = int64(pl.total())
	db := ds.DB()

	type product struct{ price, version, count int64 }
	products := map[string]product{}
	rows, err := db.QueryContext(ctx, "SELECT id, price_cents, version, change_count FROM product")
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var p product
		if err := rows.Scan(&id, &p.price, &p.version, &p.count); err != nil {
			rows.Close()
			return err
		}
		products[id] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	// Versions of each product's history, in the order they were applied.
	history := map[string][]int64{}
	rows, err = db.QueryContext(ctx, "SELECT product_id, version FROM price_history ORDER BY id")
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return err
		}
		history[id] = append(history[id], v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	want := int64(pl.Changes)
	for i := range pl.Products {
		id := productID(i)
		p, ok := products[id]
		delete(products, id)
		h := history[id]
		delete(history, id)
		var wrong []string
		switch {
		case !ok:
			wrong = append(wrong, "no product row")
		default:
			if wantPrice := pl.price(i, want); p.price != wantPrice {
				wrong = append(wrong, fmt.Sprintf("price %d, want %d", p.price, wantPrice))
			}
			if p.version != want {
				wrong = append(wrong, fmt.Sprintf("version %d, want %d", p.version, want))
			}
			if p.count != want {
				wrong = append(wrong, fmt.Sprintf("change_count %d, want %d", p.count, want))
			}
		}
		if int64(len(h)) != want {
			wrong = append(wrong, fmt.Sprintf("%d history rows, want %d", len(h), want))
		} else if k := outOfOrder(h); k >= 0 {
			wrong = append(wrong, fmt.Sprintf("history row %d is version %d, want %d", k+1, h[k], k+1))
		}
		if len(wrong) > 0 {
			r.problem("%s: %s", id, strings.Join(wrong, ", "))
		}
	}
	for id := range products {
		r.problem("%s: product not in the plan", id)
	}
	for id, h := range history {
		r.problem("%s: %d history rows of a product not in the plan", id, len(h))
	}

	err = db.QueryRowContext(ctx, rebind(ds.Dialect(),
		"SELECT COUNT(*) FROM "+ds.Table()+" WHERE consumer_group = ?"), group).Scan(&r.Records)
	if err != nil {
		return err
	}
	if r.Records != r.ChangesSent {
		r.problem("%s has %d rows for group %s, want %d", ds.Table(), r.Records, group, r.ChangesSent)
	}
	return nil
}

// outOfOrder returns the index of the first history entry that is not the
// version 1, 2, 3 ... expected there, or -1.
func outOfOrder(h []int64) int {
	for k, v := range h {
		if v != int64(k+1) {
			return k
		}
	}
	return -1
}

// print writes the report as a compact table, then OK or FAIL and the
// problems found.
func (r *Report) print(w io.Writer) {
	num := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	var sources []string
	for _, s := range []struct {
		n    int64
		what string
	}{{r.Resends, "producer resends"}, {r.BrokerDuplicates, "broker duplicates"}, {r.Rewound, "by the offset rewind"}} {
		if s.n > 0 {
			sources = append(sources, fmt.Sprintf("%d %s", s.n, s.what))
		}
	}
	if r.Restarts > 0 {
		sources = append(sources, fmt.Sprintf("%d consumer restart", r.Restarts))
	}
	injected := num(r.injected())
	if r.Resends < 0 && r.BrokerDuplicates < 0 && r.Rewound < 0 {
		injected = "-"
	}
	rows := []struct{ name, value, note string }{
		{"changes sent", num(r.ChangesSent), fmt.Sprintf("%d products", r.Products)},
		{"duplicates injected", injected, strings.Join(sources, ", ")},
		{"deliveries", num(r.Deliveries), "messages handed to the listeners"},
		{"duplicates skipped", num(r.Skipped), "acknowledged without applying"},
		{"applied", num(r.Applied), fmt.Sprintf("transactions committed; %s records", num(r.Records))},
		{"mismatches", fmt.Sprint(r.Mismatches), ""},
	}
	if r.Retried > 0 {
		rows = append(rows[:5], append([]struct{ name, value, note string }{
			{"retried", num(r.Retried), "failed attempts, retried"}}, rows[5:]...)...)
	}
	for _, row := range rows {
		line := fmt.Sprintf("  %-20s %7s", row.name, row.value)
		if row.note != "" {
			line += "   " + row.note
		}
		fmt.Fprintln(w, line)
	}
	if r.Mismatches == 0 {
		fmt.Fprintln(w, "OK: every change applied exactly once, in order")
		return
	}
	fmt.Fprintf(w, "FAIL: %d mismatches\n", r.Mismatches)
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  "+p)
	}
	if len(r.Problems) < r.Mismatches {
		fmt.Fprintf(w, "  ... and %d more\n", r.Mismatches-len(r.Problems))
	}
}

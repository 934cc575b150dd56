package mqdatasource_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/b74fc070/rocketmq-exactlyonce/mqdatasource"
)

func TestValidateTableName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"transaction_record", true},
		{"_t", true},
		{"T1", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"1table", false},
		{"db.table", false},
		{"t; DROP TABLE x", false},
		{"`t`", false},
		{`"t"`, false},
		{"[t]", false},
		{"t-1", false},
		{"tablé", false},
		{"t\n", false},
	} {
		err := mqdatasource.ValidateTableName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, mqdatasource.ErrInvalidTableName)) {
			t.Errorf("ValidateTableName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestOpenRejectsBadTableName: the name is refused before any connection
// is made (the DSN points nowhere).
func TestOpenRejectsBadTableName(t *testing.T) {
	for _, driverName := range []string{"mysql", "pgx", "sqlserver"} {
		dsn := map[string]string{
			"mysql":     "u@tcp(127.0.0.1:1)/db",
			"pgx":       "postgres://u@127.0.0.1:1/db",
			"sqlserver": "sqlserver://u:p@127.0.0.1:1?database=db",
		}[driverName]
		_, err := mqdatasource.Open(driverName, dsn, mqdatasource.WithTable("x; DROP TABLE y"))
		if !errors.Is(err, mqdatasource.ErrInvalidTableName) {
			t.Errorf("%s: Open = %v, want ErrInvalidTableName", driverName, err)
		}
	}
}

func TestDeliveryValidate(t *testing.T) {
	ok := mqdatasource.Delivery{ConsumerGroup: "g", Key: "k"}
	for _, tc := range []struct {
		name string
		d    mqdatasource.Delivery
		ok   bool
	}{
		{"ok", ok, true},
		{"empty key", mqdatasource.Delivery{ConsumerGroup: "g"}, false},
		{"empty group", mqdatasource.Delivery{Key: "k"}, false},
		{"longest", mqdatasource.Delivery{ConsumerGroup: "g", Key: strings.Repeat("k", mqdatasource.MaxMessageIDLen-2)}, true},
		{"too long", mqdatasource.Delivery{ConsumerGroup: "g", Key: strings.Repeat("k", mqdatasource.MaxMessageIDLen-1)}, false},
		{"longest multibyte", mqdatasource.Delivery{ConsumerGroup: "g", Key: strings.Repeat("键", mqdatasource.MaxMessageIDLen-2)}, true},
		{"invalid utf8", mqdatasource.Delivery{ConsumerGroup: "g", Key: "\xff"}, false},
		{"# in the key", mqdatasource.Delivery{ConsumerGroup: "c", Key: "a#b"}, true},
		// Key "a", group "b#c" and key "a#b", group "c" would share the
		// message id "a#b#c": one group's record would stop the other
		// group's message. A group cannot contain the separator.
		{"# in the group", mqdatasource.Delivery{ConsumerGroup: "b#c", Key: "a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.d.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, mqdatasource.ErrInvalidDelivery)) {
				t.Errorf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func FuzzValidateTableName(f *testing.F) {
	for _, s := range []string{"transaction_record", "", "a.b", "t; DROP", "`x`", "_", "1a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if mqdatasource.ValidateTableName(name) != nil {
			return
		}
		// An accepted name can go into SQL text of every dialect unquoted
		// or quoted: nothing but ASCII letters, digits and underscores.
		if len(name) == 0 || len(name) > 64 || (name[0] >= '0' && name[0] <= '9') {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("accepted %q with %q", name, r)
			}
		}
	})
}

func FuzzDeliveryValidate(f *testing.F) {
	f.Add("key", "group")
	f.Add("", "g")
	f.Add(strings.Repeat("k", 300), "g")
	f.Add("\xff", "g")
	f.Add("a", "b#c")
	f.Fuzz(func(t *testing.T, key, group string) {
		d := mqdatasource.Delivery{ConsumerGroup: group, Key: key}
		err := d.Validate()
		if err != nil {
			if !errors.Is(err, mqdatasource.ErrInvalidDelivery) {
				t.Fatalf("error %v does not wrap ErrInvalidDelivery", err)
			}
			return
		}
		id := d.MessageID()
		if key == "" || group == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > mqdatasource.MaxMessageIDLen {
			t.Fatalf("accepted key %q group %q", key, group)
		}
		if id != key+"#"+group {
			t.Fatalf("MessageID = %q", id)
		}
		// The id names one (key, group) pair: it splits back at its last #.
		if i := strings.LastIndexByte(id, '#'); id[:i] != key || id[i+1:] != group {
			t.Fatalf("message id %q of key %q group %q is ambiguous", id, key, group)
		}
	})
}

func TestDeliveryFromContext(t *testing.T) {
	d := mqdatasource.Delivery{ConsumerGroup: "g", Key: "k"}
	_, _ = mqdatasource.Deliver(context.Background(), d, func(ctx context.Context) error {
		if got, ok := mqdatasource.DeliveryFromContext(ctx); !ok || got != d {
			t.Errorf("DeliveryFromContext = %+v, %v; want %+v", got, ok, d)
		}
		for _, ctx := range []context.Context{context.Background(), mqdatasource.WithoutDelivery(ctx)} {
			if got, ok := mqdatasource.DeliveryFromContext(ctx); ok || got != (mqdatasource.Delivery{}) {
				t.Errorf("DeliveryFromContext = %+v, %v; want none", got, ok)
			}
		}
		return nil
	})
}

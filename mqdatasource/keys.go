package mqdatasource

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

var (
	// ErrKeyCollision means the claim met the record's unique key, but the
	// recorded message_id is not byte for byte this delivery's: the column
	// takes two different ids for one value (a case- or accent-insensitive
	// collation, a character set that replaced characters by '?'). The
	// message is not a duplicate and was not applied; nothing was
	// committed. It is never reported as Duplicate: retry it (it ends in the
	// dead-letter queue if the collision stays) and fix the column (see
	// KeyCollisionError).
	ErrKeyCollision = errors.New("mqdatasource: dedupe key collides with another recorded key")

	// ErrUnstorableKey means the delivery's message id has a character that
	// the message_id column's character set (as the schema check learned
	// it) cannot store exactly: the server would replace it (by '?', in a
	// non-strict MySQL session) or refuse it. Errors wrapping it also wrap
	// ErrInvalidDelivery; no SQL was run.
	ErrUnstorableKey = errors.New("mqdatasource: the message_id column cannot store the key")
)

// KeyCollisionError reports a claim that met the unique key of another
// recorded message_id. It wraps ErrKeyCollision.
type KeyCollisionError struct {
	Table     string // the claim table
	MessageID string // this delivery's message id (key#group)
	// Stored is the recorded message_id the unique key took for
	// MessageID, as the server returns it; "" when it could not be read
	// back (a value the column mangled on the way in).
	Stored string
	// Column describes message_id's character set and collation as the
	// schema check learned them, e.g. "character set latin1, collation
	// latin1_swedish_ci"; "unknown" when no check ran.
	Column string
}

func (e *KeyCollisionError) Error() string {
	stored := "a value that cannot be read back as this key"
	if e.Stored != "" {
		stored = fmt.Sprintf("%q", e.Stored)
	}
	return fmt.Sprintf("mqdatasource: message id %q collides with the recorded %s in %s.message_id (%s): not a duplicate, not applied; use a binary collation and a character set that holds every key (see CheckSchema)",
		e.MessageID, stored, e.Table, e.Column)
}

// Unwrap returns ErrKeyCollision.
func (e *KeyCollisionError) Unwrap() error { return ErrKeyCollision }

// keyColumn is what the schema check learned about message_id's encoding.
type keyColumn struct {
	charset   string // as the catalog names it, e.g. "utf8mb3", "UTF8", "code page 1252"
	collation string
	// fits reports whether the column stores r exactly; nil: every
	// character fits (or the character set is unknown).
	fits func(r rune) bool
}

func (k *keyColumn) describe() string {
	if k == nil || (k.charset == "" && k.collation == "") {
		return "character set unknown: no schema check ran"
	}
	s := "character set " + k.charset
	if k.collation != "" {
		s += ", collation " + k.collation
	}
	return s
}

func fitsASCII(r rune) bool { return r < utf8.RuneSelf }

// fitsLatin1 is the printable ISO 8859-1 repertoire, which MySQL's latin1
// (cp1252) and SQL Server's code page 1252 both hold. The few cp1252
// characters beyond it (€, curly quotes) are refused too: erring on the
// side of refusal costs a retried message, not a lost one.
func fitsLatin1(r rune) bool { return r < utf8.RuneSelf || (r >= 0xA0 && r <= 0xFF) }

func fitsBMP(r rune) bool { return r <= 0xFFFF }

// charsetFits returns which characters a message_id column of the given
// character set (lower case) stores exactly, and whether that is every
// character a key can have (nil fits).
func charsetFits(dialectName, charset string) (fits func(rune) bool, complete bool) {
	cs := strings.ToLower(charset)
	switch dialectName {
	case "mysql":
		switch cs {
		case "", "utf8mb4", "utf16", "utf16le", "utf32":
			return nil, true
		case "utf8", "utf8mb3", "ucs2":
			return fitsBMP, false
		case "latin1":
			return fitsLatin1, false
		}
	case "postgres":
		switch cs {
		case "", "utf8":
			return nil, true
		case "latin1", "win1252":
			return fitsLatin1, false
		}
	case "sqlserver":
		switch cs {
		case "", "unicode", "code page 65001":
			return nil, true
		case "code page 1252", "code page 28591":
			return fitsLatin1, false
		}
	}
	return fitsASCII, false
}

// charsetFix returns the statement or step that gives message_id a
// character set holding every key.
func charsetFix(d *dialect, table string, idLen int64) string {
	n := "255"
	if idLen > 0 {
		n = fmt.Sprint(idLen)
	}
	switch d.name {
	case "mysql":
		return fmt.Sprintf("ALTER TABLE `%s` MODIFY `message_id` varchar(%s) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL", table, n)
	case "sqlserver":
		if idLen < 0 {
			n = "max"
		}
		return fmt.Sprintf("ALTER TABLE [%s] ALTER COLUMN [message_id] nvarchar(%s) COLLATE Latin1_General_100_BIN2 NOT NULL (drop the unique key on message_id first and re-create it after)", table, n)
	default:
		return "create the claim table in a database of encoding UTF8 (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0): PostgreSQL cannot change a database's encoding"
	}
}

// charsetGap describes the keys a column of repertoire fits cannot store.
func charsetGap(fits func(rune) bool) string {
	switch {
	case fits == nil:
		return "none"
	case fits('é') && !fits('中'):
		return "no CJK, no emoji, nothing beyond Latin-1"
	case fits('中') && !fits('😀'):
		return "no 4-byte UTF-8 characters such as emoji"
	}
	return "nothing beyond ASCII"
}

// checkFits refuses an id with a character the column cannot store.
func (k *keyColumn) checkFits(table, id string) error {
	if k == nil || k.fits == nil {
		return nil
	}
	for i, r := range id {
		if !k.fits(r) {
			return fmt.Errorf("%w: %w: message id %q has %q (U+%04X) at byte %d, which %s.message_id (%s) cannot store; it would be replaced or refused, never stored as sent",
				ErrInvalidDelivery, ErrUnstorableKey, truncate(id, 80), r, r, i, table, k.describe())
		}
	}
	return nil
}

// confirmSQL returns the read that confirms a duplicate: the message_id
// values the column takes for its one argument. MySQL reads with a lock,
// to see the latest committed row rather than a snapshot.
func (d *dialect) confirmSQL(table string) string {
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", d.quote("message_id"), d.quote(table), d.quote("message_id"), d.param(1))
	if d.name == "mysql" {
		q += " LOCK IN SHARE MODE"
	}
	return q
}

// confirmDup checks, in the open transaction, that the record the claim of
// id met is id byte for byte. It returns nil for a true duplicate, a
// *KeyCollisionError when the record is another id, or the read's error.
// dupErr is the claim's duplicate error (nil when the claim reported none:
// PostgreSQL), whose text may name the stored value.
func (pc *pconn) confirmDup(ctx context.Context, id string, dupErr error) error {
	dl := pc.core.dialect.impl()
	args := []driver.NamedValue{{Ordinal: 1, Value: dl.stringArg(id)}}
	if err := checkArgs(pc.inner, args); err != nil {
		return err
	}
	stored, err := pc.queryStrings(ctx, dl.confirmSQL(pc.core.table), args)
	if err != nil {
		if dl.incomparable != nil && dl.incomparable(err) {
			// The column cannot even hold this id: the record the
			// claim met is another id, mangled the same way.
			return pc.core.collision(id, dl.dupEntry(dupErr))
		}
		// Not known to be a duplicate: retried, never acknowledged.
		return fmt.Errorf("mqdatasource: confirming the duplicate of message id %q: %w", id, err)
	}
	if stored[id] {
		return nil
	}
	other := dl.dupEntry(dupErr)
	for s := range stored {
		other = s
		break
	}
	return pc.core.collision(id, other)
}

// collision returns the *KeyCollisionError of id against the recorded
// value stored.
func (c *core) collision(id, stored string) error {
	return &KeyCollisionError{Table: c.table, MessageID: id, Stored: stored, Column: c.keyColumn.Load().describe()}
}

// dupEntry returns the value a duplicate error names, or "".
func (d *dialect) dupEntry(err error) string {
	if err == nil || d.dupValue == nil {
		return ""
	}
	return d.dupValue(err)
}

package mqdatasource

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/b74fc070/rocketmq-exactlyonce/schema"
)

// mysqlUniqueKey is the name of the unique key on message_id in
// schema/transaction_record.sql. CheckSchema learns the real name from the
// table, so a table created by the Java client works too.
const mysqlUniqueKey = "uk_message_id"

var mysqlDialect = &dialect{
	name:      "mysql",
	migration: "schema/transaction_record.sql",
	ddl:       schema.MySQL,
	quote:     func(s string) string { return "`" + s + "`" },
	param:     func(int) string { return "?" },
	stringArg: func(s string) any { return s },
	isDuplicate: func(err error, uk, messageID string) bool {
		me, ok := mysqlError(err)
		if !ok || me.Number != 1062 {
			return false
		}
		entry, key, ok := parseMySQLDuplicate(me.Message)
		if !ok {
			return false
		}
		return key == uk || duplicateEntryIs(entry, messageID)
	},
	dupValue: func(err error) string {
		me, ok := mysqlError(err)
		if !ok || me.Number != 1062 {
			return ""
		}
		entry, _, _ := parseMySQLDuplicate(me.Message)
		return entry
	},
	incomparable: func(err error) bool {
		// 1267, 1270, 1271: illegal mix of collations, raised when the
		// argument has characters the column's character set lacks.
		me, ok := mysqlError(err)
		return ok && (me.Number == 1267 || me.Number == 1270 || me.Number == 1271)
	},
	classify:         classifyMySQL,
	defaultUniqueKey: func(string) string { return mysqlUniqueKey },
	purge: func(_ *dialect, t string, n int) string {
		return fmt.Sprintf("DELETE FROM `%s` WHERE `ctime` < ? ORDER BY `ctime` LIMIT %d", t, n)
	},
	inspectTable:  inspectMySQL,
	implicitBegin: true,
	types: map[string][]string{
		"id":             {"bigint", "int"},
		"consumer_group": {"varchar", "char"},
		"message_id":     {"varchar", "char"},
		"topic_name":     {"varchar", "char"},
		"ctime":          {"bigint"},
		"queue_id":       {"int", "bigint"},
		"offset":         {"bigint"},
		"broker_name":    {"varchar", "char"},
	},
}

// parseMySQLDuplicate splits the message of error 1062, "Duplicate entry
// 'ENTRY' for key 'KEY'", into the entry and the key name. MySQL 8.0.19 and
// later qualify the key with the table name ('table.key'); MariaDB does not.
func parseMySQLDuplicate(msg string) (entry, key string, ok bool) {
	const pre, mid = "Duplicate entry '", "' for key '"
	i := strings.LastIndex(msg, mid)
	if !strings.HasPrefix(msg, pre) || i < len(pre) || !strings.HasSuffix(msg, "'") {
		return "", "", false
	}
	entry = msg[len(pre):i]
	key = msg[i+len(mid) : len(msg)-1]
	if j := strings.LastIndexByte(key, '.'); j >= 0 {
		key = key[j+1:]
	}
	return entry, key, true
}

// duplicateEntryIs reports whether entry, the value quoted in a 1062
// message of the claim INSERT, is messageID. The server truncates long
// values: MariaDB 10.11 to 64 characters ending in "..." (tested); MySQL's
// format cuts at 192 characters, with or without "..." (from its source,
// not tested: no MySQL server here). The claim INSERT writes only the
// record table, so a truncated
// entry that begins a long message id is that id on message_id's key.
// (Without CheckSchema the key's name is a guess, so this is what
// recognises a duplicate of a long id, e.g. on the Java client's table.)
func duplicateEntryIs(entry, messageID string) bool {
	if entry == messageID {
		return true
	}
	const minTruncated = 32 // MariaDB keeps 61 characters, MySQL more
	p, marked := strings.CutSuffix(entry, "...")
	if !marked && utf8.RuneCountInString(entry) < 64 {
		return false
	}
	return len(p) >= minTruncated && len(p) < len(messageID) && strings.HasPrefix(messageID, p)
}

func inspectMySQL(ctx context.Context, _ *dialect, db *sql.DB, table string) (*tableInfo, error) {
	ti := &tableInfo{columns: map[string]columnInfo{}}
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(COLLATION_NAME, ''), COALESCE(CHARACTER_SET_NAME, '')
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
	if err != nil {
		return nil, err
	}
	if err := scanColumns(rows, ti); err != nil {
		return nil, err
	}
	rows, err = db.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME, COALESCE(SUB_PART, 0)
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0
ORDER BY INDEX_NAME, SEQ_IN_INDEX`, table)
	if err != nil {
		return nil, err
	}
	if err := scanIndexes(rows, ti); err != nil {
		return nil, err
	}
	return ti, nil
}

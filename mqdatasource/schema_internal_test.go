package mqdatasource

import (
	"errors"
	"strings"
	"testing"
)

// claimTable returns the columns of a claim table as the catalog describes
// it, with text columns of type text and message_id of length idLen.
func claimTable(text string, idLen int64, coll string) map[string]columnInfo {
	return map[string]columnInfo{
		"id":             {dataType: "bigint"},
		"consumer_group": {dataType: text, length: 255},
		"message_id":     {dataType: text, length: idLen, collation: coll},
		"topic_name":     {dataType: text, length: 255},
		"ctime":          {dataType: "bigint"},
		"queue_id":       {dataType: "int"},
		"offset":         {dataType: "bigint"},
		"broker_name":    {dataType: text, length: 255},
	}
}

func TestCheckTable(t *testing.T) {
	uk := map[string][]string{"uk": {"message_id"}}
	without := func(cols map[string]columnInfo, name string) map[string]columnInfo {
		delete(cols, name)
		return cols
	}
	with := func(cols map[string]columnInfo, name, typ string) map[string]columnInfo {
		cols[name] = columnInfo{dataType: typ}
		return cols
	}
	for _, tc := range []struct {
		name    string
		d       *dialect
		ti      tableInfo
		problem string // "" = passes
		advice  string // in Error() when problem != ""
		uk      string
		idLen   int64
		warning string
	}{
		{name: "missing table", d: mysqlDialect, ti: tableInfo{columns: map[string]columnInfo{}},
			problem: "table does not exist", advice: "(create it with schema/transaction_record.sql, or open with WithMigrate())"},
		{name: "mysql ok", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, "utf8mb4_bin"), uniques: uk},
			uk: "uk", idLen: 255},
		{name: "missing column", d: mysqlDialect, ti: tableInfo{columns: without(claimTable("varchar", 255, ""), "broker_name"), uniques: uk},
			problem: "column broker_name is missing", advice: "(alter the table to match schema/transaction_record.sql)"},
		{name: "missing id", d: postgresDialect, ti: tableInfo{columns: without(claimTable("character varying", 255, ""), "id"), uniques: uk},
			problem: "column id is missing", advice: "(alter the table to match schema/transaction_record.postgres.sql)"},
		{name: "no unique key", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, "")},
			problem: "no unique key on message_id alone", advice: "alter the table"},
		{name: "composite unique key", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, ""), uniques: map[string][]string{"uk": {"message_id", "consumer_group"}}},
			problem: "no unique key on message_id alone"},
		{name: "prefix unique index", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, ""), uniques: uk, prefix: map[string]bool{"uk": true}},
			problem: "no unique key on message_id alone"},
		{name: "prefix index and a full one", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, ""),
			uniques: map[string][]string{"a_prefix": {"message_id"}, "b_full": {"message_id"}}, prefix: map[string]bool{"a_prefix": true}},
			uk: "b_full", idLen: 255},
		{name: "case-insensitive collation", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 255, "utf8mb4_general_ci"), uniques: uk},
			uk: "uk", idLen: 255, warning: "case-insensitive collation utf8mb4_general_ci"},
		{name: "case-insensitive collation, SQL Server", d: sqlserverDialect, ti: tableInfo{columns: claimTable("varchar", 255, "sql_latin1_general_cp1_ci_as"), uniques: uk},
			uk: "uk", idLen: 255, warning: "case-insensitive collation sql_latin1_general_cp1_ci_as"},
		{name: "short message_id", d: mysqlDialect, ti: tableInfo{columns: claimTable("varchar", 32, ""), uniques: uk},
			problem: "column message_id holds only 32 characters, want at least 64 characters"},
		{name: "sqlserver ok", d: sqlserverDialect, ti: tableInfo{columns: claimTable("varchar", 255, "latin1_general_100_bin2"), uniques: uk},
			uk: "uk", idLen: 255},
		{name: "sqlserver nvarchar", d: sqlserverDialect, ti: tableInfo{columns: claimTable("nvarchar", 100, ""), uniques: uk},
			uk: "uk", idLen: 100},
		{name: "sqlserver varchar(max)", d: sqlserverDialect, ti: tableInfo{columns: claimTable("varchar", -1, ""), uniques: uk},
			uk: "uk", idLen: -1},
		{name: "sqlserver short message_id", d: sqlserverDialect, ti: tableInfo{columns: claimTable("varchar", 63, ""), uniques: uk},
			problem: "column message_id holds only 63 bytes, want at least 64 bytes", advice: "(alter the table to match schema/transaction_record.sqlserver.sql)"},
		{name: "sqlserver text type", d: sqlserverDialect, ti: tableInfo{columns: claimTable("text", 0, ""), uniques: uk},
			problem: "column consumer_group is text, want varchar or char or nvarchar or nchar"},
		{name: "sqlserver ctime int", d: sqlserverDialect, ti: tableInfo{columns: with(claimTable("varchar", 255, ""), "ctime", "int"), uniques: uk},
			problem: "column ctime is int, want bigint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			facts, warnings, err := checkTable(tc.d, "tr", &tc.ti, false)
			if tc.problem != "" {
				var se *SchemaError
				if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
					t.Fatalf("checkTable: %v, want a *SchemaError", err)
				}
				if !strings.Contains(se.Problem, tc.problem) || se.Table != "tr" || se.Migration != tc.d.migration {
					t.Fatalf("SchemaError %+v, want problem containing %q", se, tc.problem)
				}
				if !strings.Contains(err.Error(), tc.advice) {
					t.Fatalf("message %q does not contain %q", err, tc.advice)
				}
				return
			}
			if err != nil {
				t.Fatalf("checkTable: %v", err)
			}
			if facts.uniqueKey != tc.uk || facts.idLen != tc.idLen {
				t.Errorf("facts %+v, want unique key %q, id length %d", facts, tc.uk, tc.idLen)
			}
			if tc.warning == "" && len(warnings) != 0 || tc.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warning)) {
				t.Errorf("warnings %q, want one containing %q", warnings, tc.warning)
			}
		})
	}
}

// TestValidateIDLength: the message id is checked against the column's
// length in its unit, MaxMessageIDLen when the length is unknown (no schema
// check) and no limit for varchar(max); a column longer than
// MaxMessageIDLen admits longer ids.
func TestValidateIDLength(t *testing.T) {
	ascii255 := Delivery{ConsumerGroup: "g", Key: strings.Repeat("k", MaxMessageIDLen-2)} // 255 bytes
	ascii280 := Delivery{ConsumerGroup: "g", Key: strings.Repeat("k", 278)}               // 280 bytes
	wide := Delivery{ConsumerGroup: "g", Key: strings.Repeat("é", 120)}                   // 122 characters, 242 bytes
	wider := Delivery{ConsumerGroup: "g", Key: strings.Repeat("é", 200)}                  // 202 characters, 402 bytes
	widest := Delivery{ConsumerGroup: "g", Key: strings.Repeat("é", 278)}                 // 280 characters, 558 bytes
	for _, tc := range []struct {
		name  string
		d     *dialect
		idLen int64 // as CheckSchema learned it; 0 = unknown
		dv    Delivery
		ok    bool
	}{
		{"sqlserver unknown, 255 bytes", sqlserverDialect, 0, ascii255, true},
		{"sqlserver unknown, 242 bytes", sqlserverDialect, 0, wide, true},
		{"sqlserver unknown, 402 bytes", sqlserverDialect, 0, wider, false},
		{"mssql unknown, 402 bytes", sqlserverQDialect, 0, wider, false},
		{"sqlserver varchar(max), 402 bytes", sqlserverDialect, -1, wider, true},
		{"sqlserver 255, 402 bytes", sqlserverDialect, 255, wider, false},
		{"sqlserver 500, 402 bytes", sqlserverDialect, 500, wider, true},
		{"sqlserver 200, 242 bytes", sqlserverDialect, 200, wide, false},
		{"mysql unknown, 202 characters", mysqlDialect, 0, wider, true},
		{"mysql 255, 202 characters", mysqlDialect, 255, wider, true},
		{"mysql 200, 202 characters", mysqlDialect, 200, wider, false},
		{"postgres unknown, 255 characters", postgresDialect, 0, ascii255, true},
		{"postgres 100, 122 characters", postgresDialect, 100, wide, false},
		{"mysql unknown, 280 characters", mysqlDialect, 0, widest, false},
		{"mysql 255, 280 characters", mysqlDialect, 255, widest, false},
		{"mysql 300, 280 characters", mysqlDialect, 300, widest, true},
		{"postgres 300, 280 characters", postgresDialect, 300, ascii280, true},
		{"sqlserver unknown, 280 bytes", sqlserverDialect, 0, ascii280, false},
		{"sqlserver 300, 280 bytes", sqlserverDialect, 300, ascii280, true},
		{"sqlserver varchar(max), 558 bytes", sqlserverDialect, -1, widest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &core{table: "tr", dialect: tc.d, public: tc.d}
			c.idLen.Store(tc.idLen)
			err := c.validate(tc.dv, tc.dv.MessageID())
			if tc.ok && err != nil {
				t.Fatalf("validate: %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidDelivery) {
				t.Fatalf("validate: %v, want ErrInvalidDelivery", err)
			}
			// Unknown, the length is not the column's: the error must not
			// say what the column holds.
			if !tc.ok && tc.idLen == 0 && strings.Contains(err.Error(), "holds") {
				t.Errorf("validate: %q claims a column length", err)
			}
		})
	}
}

package mqdatasource

import (
	"context"
	"errors"
	"strings"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"
)

// TestKeyCollisionIsNotDuplicate: a claim that meets the unique key of a
// record the column only takes for this id (a case-insensitive SQL Server
// collation here) fails with a *KeyCollisionError naming both ids, never
// Duplicate, also when the handler swallows the error.
func TestKeyCollisionIsNotDuplicate(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uk_tr_message_id'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (K#g)."}
	for _, swallow := range []bool{false, true} {
		s := &fakeServer{
			fail: func(stmt string) error {
				if stmt == fakeClaim {
					return dup
				}
				return nil
			},
			stored: func(string) []string { return []string{"K#g"} },
		}
		db := openFake(t, s)
		res, err := Deliver(context.Background(), fakeDelivery("k"), func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, "UPDATE a SET n = n + 1")
			if swallow {
				return nil
			}
			return err
		})
		var ke *KeyCollisionError
		if res != Failed || !errors.As(err, &ke) || !errors.Is(err, ErrKeyCollision) || errors.Is(err, ErrAlreadyConsumed) {
			t.Fatalf("swallow=%v: Deliver: %v, %v; want failed with a *KeyCollisionError", swallow, res, err)
		}
		if ke.MessageID != "k#g" || ke.Stored != "K#g" || ke.Table != "tr" {
			t.Fatalf("swallow=%v: %+v", swallow, ke)
		}
		want := []string{"BEGIN", fakeClaim, fakeConfirm, "ROLLBACK"}
		if got := s.statements(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("statements\n got %q\nwant %q", got, want)
		}
	}
}

// TestKeyCollisionNothingReadBack: a duplicate whose record cannot be read
// back under this id (the column mangled it) is a collision; the stored
// value named by the server's error is reported.
func TestKeyCollisionNothingReadBack(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uk_tr_message_id'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (pay-?-42#g)."}
	s := &fakeServer{
		fail: func(stmt string) error {
			if stmt == fakeClaim {
				return dup
			}
			return nil
		},
		stored: func(string) []string { return nil },
	}
	db := openFake(t, s)
	res, err := claimTx(db, "pay-😁-42")
	var ke *KeyCollisionError
	if res != Failed || !errors.As(err, &ke) || ke.Stored != "pay-?-42#g" {
		t.Fatalf("Deliver: %v, %v; want failed with a collision against pay-?-42#g", res, err)
	}
}

func TestCharsetFits(t *testing.T) {
	const emoji, cjk, latin, ascii = "pay-😀-42#G", "付款-42#G", "café#G", "A-1#G"
	for _, tc := range []struct {
		dialect, charset string
		ok               []string
		refused          []string
		complete         bool
	}{
		{"mysql", "utf8mb4", []string{emoji, cjk, latin, ascii}, nil, true},
		{"mysql", "utf8mb3", []string{cjk, latin, ascii}, []string{emoji}, false},
		{"mysql", "utf8", []string{cjk, latin, ascii}, []string{emoji}, false},
		{"mysql", "latin1", []string{latin, ascii}, []string{emoji, cjk}, false},
		{"mysql", "gbk", []string{ascii}, []string{emoji, cjk, latin}, false},
		{"postgres", "UTF8", []string{emoji, cjk, latin, ascii}, nil, true},
		{"postgres", "SQL_ASCII", []string{ascii}, []string{emoji, cjk, latin}, false},
		{"postgres", "LATIN1", []string{latin, ascii}, []string{emoji, cjk}, false},
		{"sqlserver", "UNICODE", []string{emoji, cjk, latin, ascii}, nil, true},
		{"sqlserver", "code page 65001", []string{emoji, cjk, latin, ascii}, nil, true},
		{"sqlserver", "code page 1252", []string{latin, ascii}, []string{emoji, cjk}, false},
		{"sqlserver", "code page 936", []string{ascii}, []string{emoji, cjk, latin}, false},
	} {
		fits, complete := charsetFits(tc.dialect, tc.charset)
		if complete != tc.complete {
			t.Errorf("%s %s: complete %v", tc.dialect, tc.charset, complete)
		}
		k := &keyColumn{charset: tc.charset, fits: fits}
		for _, id := range tc.ok {
			if err := k.checkFits("tr", id); err != nil {
				t.Errorf("%s %s: %q refused: %v", tc.dialect, tc.charset, id, err)
			}
		}
		for _, id := range tc.refused {
			err := k.checkFits("tr", id)
			if !errors.Is(err, ErrUnstorableKey) || !errors.Is(err, ErrInvalidDelivery) || !strings.Contains(err.Error(), tc.charset) {
				t.Errorf("%s %s: %q: %v, want ErrUnstorableKey naming the character set", tc.dialect, tc.charset, id, err)
			}
		}
	}
}

// TestCheckTableCharset: a message_id that cannot store every key is
// refused with the statement that fixes it, or with WithCharsetWarnOnly
// accepted, reported, and its repertoire learned for validation.
func TestCheckTableCharset(t *testing.T) {
	uk := map[string][]string{"uk": {"message_id"}}
	table := func(d *dialect, typ, charset, coll string) *tableInfo {
		cols := claimTable(typ, 255, coll)
		c := cols["message_id"]
		c.charset = charset
		cols["message_id"] = c
		if d == postgresDialect {
			cols["queue_id"] = columnInfo{dataType: "integer"}
		}
		return &tableInfo{columns: cols, uniques: uk}
	}
	for _, tc := range []struct {
		name          string
		d             *dialect
		ti            *tableInfo
		fix           string // "" = accepted
		storesEmoji   bool
		storesLatin1  bool
		storesChinese bool
	}{
		{"mysql utf8mb4", mysqlDialect, table(mysqlDialect, "varchar", "utf8mb4", "utf8mb4_bin"), "", true, true, true},
		{"mysql utf8mb3", mysqlDialect, table(mysqlDialect, "varchar", "utf8mb3", "utf8mb3_general_ci"),
			"ALTER TABLE `tr` MODIFY `message_id` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL", false, true, true},
		{"mysql latin1", mysqlDialect, table(mysqlDialect, "varchar", "latin1", "latin1_swedish_ci"),
			"ALTER TABLE `tr` MODIFY `message_id` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL", false, true, false},
		{"postgres SQL_ASCII", postgresDialect, table(postgresDialect, "character varying", "SQL_ASCII", "c"),
			"ENCODING 'UTF8'", false, false, false},
		{"postgres UTF8", postgresDialect, table(postgresDialect, "character varying", "UTF8", "c"), "", true, true, true},
		{"sqlserver varchar 1252", sqlserverDialect, table(sqlserverDialect, "varchar", "code page 1252", "latin1_general_100_bin2"),
			"ALTER TABLE [tr] ALTER COLUMN [message_id] nvarchar(255) COLLATE Latin1_General_100_BIN2 NOT NULL", false, true, false},
		{"sqlserver nvarchar", sqlserverDialect, table(sqlserverDialect, "nvarchar", "UNICODE", "latin1_general_100_bin2"), "", true, true, true},
		{"sqlserver varchar utf8", sqlserverDialect, table(sqlserverDialect, "varchar", "code page 65001", "latin1_general_100_bin2_utf8"), "", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			facts, _, err := checkTable(tc.d, "tr", tc.ti, false)
			if tc.fix == "" {
				if err != nil || facts.narrowCharset != "" {
					t.Fatalf("checkTable: %v %q", err, facts.narrowCharset)
				}
			} else {
				if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tc.fix) || !strings.Contains(err.Error(), "WithCharsetWarnOnly") {
					t.Fatalf("checkTable: %v; want a schema error with %q", err, tc.fix)
				}
				facts, _, err = checkTable(tc.d, "tr", tc.ti, true)
				if err != nil || !strings.Contains(facts.narrowCharset, tc.fix) {
					t.Fatalf("checkTable, warn only: %v, %q", err, facts.narrowCharset)
				}
			}
			for id, want := range map[string]bool{"😀#G": tc.storesEmoji, "é#G": tc.storesLatin1, "中#G": tc.storesChinese, "a#G": true} {
				if err := facts.keyColumn.checkFits("tr", id); (err == nil) != want {
					t.Errorf("%q: %v, want stored %v", id, err, want)
				}
			}
		})
	}
}

// TestSQLServerStringArg: ASCII keys go as varchar (the index is used
// without a conversion), others as nvarchar, whose characters arrive
// intact (a VarChar's UTF-8 bytes would be read in the database's code
// page).
func TestSQLServerStringArg(t *testing.T) {
	if v, ok := sqlserverString("k#g").(mssql.VarChar); !ok || v != "k#g" {
		t.Errorf("ASCII: %#v", sqlserverString("k#g"))
	}
	if v, ok := sqlserverString("付款#g").(string); !ok || v != "付款#g" {
		t.Errorf("non-ASCII: %#v", sqlserverString("付款#g"))
	}
}

// TestSQLServerCharsetSQL: the catalog query reports nvarchar as UNICODE
// and a varchar by its collation's code page.
func TestSQLServerCharsetSQL(t *testing.T) {
	q := sqlserverColumnsSQL(sqlserverDialect)
	for _, want := range []string{"WHEN DATA_TYPE IN ('nvarchar', 'nchar') THEN 'UNICODE'", "'code page ' + CAST(COLLATIONPROPERTY(COLLATION_NAME, 'CodePage') AS varchar(10))"} {
		if !strings.Contains(q, want) {
			t.Errorf("columns SQL lacks %q:\n%s", want, q)
		}
	}
}

// TestBatchKeyCollision: a batch claim (SQL Server, plain multi-row INSERT)
// that meets the unique key while the read of the recorded ids finds a
// value that is none of the batch's, or none at all, fails as a collision
// instead of looping or taking a message for a duplicate.
func TestBatchKeyCollision(t *testing.T) {
	dup := mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uk_tr_message_id'. Cannot insert duplicate key in object 'dbo.tr'. The duplicate key value is (A#g)."}
	for name, stored := range map[string][]string{"another value": {"A#g"}, "nothing": nil} {
		t.Run(name, func(t *testing.T) {
			s := &fakeServer{
				fail: func(stmt string) error {
					if strings.HasPrefix(stmt, "INSERT INTO [tr]") {
						return dup
					}
					return nil
				},
				stored: func(string) []string { return stored },
			}
			ds, err := OpenConnector(fakeConnector{s}, WithDialect(SQLServer()), WithTable("tr"), WithSchemaCheck(false))
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			ran := false
			_, err = ds.DeliverBatch(context.Background(), []Delivery{fakeDelivery("a"), fakeDelivery("b")}, func(context.Context, []int) error {
				ran = true
				return nil
			})
			var ke *KeyCollisionError
			if !errors.As(err, &ke) || ran || ke.MessageID != "a#g" || ke.Stored != "A#g" {
				t.Fatalf("DeliverBatch: %v (ran %v); want a collision of a#g with A#g", err, ran)
			}
		})
	}
}

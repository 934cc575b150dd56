package mqdatasource

import "database/sql"

// LookupStmt returns ds's prepared pre-check lookup, nil until IsConsumed
// first ran, for tests that check its life cycle.
func LookupStmt(ds *DataSource) *sql.Stmt { return ds.lookup.Load() }

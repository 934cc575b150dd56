package mqdatasource

import "database/sql"

// LookupStmt returns ds's prepared pre-check lookup, nil until IsConsumed
// first ran, for tests that check its life cycle.
func LookupStmt(ds *DataSource) *sql.Stmt { return ds.lookup.Load() }

// HoldLookupLock takes the lock under which the lookup is prepared, as a
// slow prepare would hold it, until release is called.
func HoldLookupLock(ds *DataSource) (release func()) {
	ds.lookupLock <- struct{}{}
	return func() { <-ds.lookupLock }
}

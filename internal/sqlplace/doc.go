// Package sqlplace numbers the ? placeholders of a query the way a
// database's driver wants them. The project's tests, cmd/eobench and the
// price-change example write their queries with ? and share this one
// rewrite.
package sqlplace

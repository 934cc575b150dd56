// Package dbtest is the real-database test environment shared by the tests
// of mqdatasource and exactlyonce: the MariaDB/MySQL and PostgreSQL servers
// named by MYSQL_DSN and POSTGRES_DSN (scripts/testdb.sh starts throwaway
// ones and sets both), table names unique to a test, and set-up and check
// helpers that fail the test on an error.
//
// It is for tests only: non-test code must not import it.
package dbtest

// Package mssqlbeside is a test-only module: it links the library beside
// github.com/denisenkom/go-mssqldb, the SQL Server driver's former home,
// which registers the same "mssql" and "sqlserver" driver names as
// microsoft/go-mssqldb. Its own go.mod keeps that old driver out of the
// library's.
package mssqlbeside

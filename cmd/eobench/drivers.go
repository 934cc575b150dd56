package main

// The drivers of -driver, and what mqdatasource needs to know about them.
import (
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/mysqldriver" // "mysql"
	_ "github.com/b74fc070/rocketmq-exactlyonce/mqdatasource/pgxdriver"   // "pgx"
)

// Package throwaway starts disposable MariaDB and PostgreSQL servers for the
// project's tests and demo, each in its own temp dir, on a free loopback port,
// with a database named "test", and a disposable Apache RocketMQ (name server
// and broker) for the tests, all removed again by Stop.
//
// Missing packages (the servers, a JRE, Maven) are installed with apt-get (as
// root, or through sudo), so a fresh Debian machine with Go needs no manual
// set-up; Apache RocketMQ's jars are fetched from Maven Central once and
// cached (see ApacheRocketMQ). Servers are started as direct children with
// Pdeathsig, so a killed parent does not leave them running.
package throwaway

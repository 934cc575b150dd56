// Package throwaway starts disposable MariaDB and PostgreSQL servers for the
// project's tests and demo: each in its own temp dir, on a free loopback port,
// with a database named "test", removed again by Stop.
//
// Missing server packages are installed with apt-get (as root, or through
// sudo), so a fresh Debian machine with Go needs no manual set-up. Servers are
// started as direct children with Pdeathsig, so a killed parent does not leave
// them running.
package throwaway

// Command testdb runs a command with a throwaway MariaDB and PostgreSQL.
//
//	go run ./internal/testdb [command args...]
//
// It starts both servers (see package throwaway), exports MYSQL_DSN
// (go-sql-driver form) and POSTGRES_DSN (pgx URL form) to the command, waits
// for it, stops the servers and exits with the command's status. A DSN that is
// already set in the environment is passed through and no server of that kind
// is started; TESTDB_ONLY=mysql (or mariadb) or TESTDB_ONLY=postgres starts
// only one, and any other value is an error. With no command it prints the
// DSNs and keeps the servers up until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/throwaway"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	only := os.Getenv("TESTDB_ONLY")
	switch only {
	case "", "mysql", "postgres":
	case "mariadb":
		only = "mysql"
	default:
		fmt.Fprintf(os.Stderr, "testdb: TESTDB_ONLY=%q: want mysql (or mariadb) or postgres, or unset for both\n", only)
		return 2
	}
	// A signal while the servers start (an apt-get install can take
	// minutes) cancels the start; afterwards it is passed to the command.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	starting := make(chan struct{})
	interrupted := make(chan os.Signal, 1)
	go func() {
		select {
		case sig := <-signals:
			interrupted <- sig
			cancel()
		case <-starting:
		}
	}()
	type started struct {
		env string
		srv *throwaway.Server
		err error
	}
	var starts []chan started
	launch := func(env, kind string, start func(context.Context) (*throwaway.Server, error)) {
		if os.Getenv(env) != "" || (only != "" && only != kind) {
			return
		}
		ch := make(chan started, 1)
		starts = append(starts, ch)
		go func() {
			srv, err := start(ctx)
			ch <- started{env, srv, err}
		}()
	}
	launch("MYSQL_DSN", "mysql", throwaway.MariaDB)
	launch("POSTGRES_DSN", "postgres", throwaway.PostgreSQL)

	var servers []*throwaway.Server
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "testdb:", err)
			}
		}
	}()
	var startErr error
	for _, ch := range starts {
		st := <-ch
		if st.err != nil {
			startErr = errors.Join(startErr, st.err)
			continue
		}
		servers = append(servers, st.srv)
		os.Setenv(st.env, st.srv.DSN())
		fmt.Fprintf(os.Stderr, "testdb: %s=%s\n", st.env, st.srv.DSN())
	}
	close(starting)
	select {
	case sig := <-interrupted:
		fmt.Fprintln(os.Stderr, "testdb: interrupted while starting the servers")
		return 128 + int(sig.(syscall.Signal))
	default:
	}
	if startErr != nil {
		fmt.Fprintln(os.Stderr, "testdb:", startErr)
		return 1
	}

	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "testdb: no command given; servers stay up until interrupted")
		<-signals
		return 0
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		return 127
	}
	go func() {
		for sig := range signals {
			_ = cmd.Process.Signal(sig)
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code >= 0 {
			return code
		}
		return 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
	default:
		fmt.Fprintln(os.Stderr, "testdb:", err)
		return 1
	}
}

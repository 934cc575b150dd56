// Command testdb runs a command with a throwaway MariaDB, PostgreSQL and
// Apache RocketMQ.
//
//	go run ./internal/testdb [command args...]
//
// It starts the servers (see package throwaway), exports MYSQL_DSN
// (go-sql-driver form), POSTGRES_DSN (pgx URL form), ROCKETMQ_NAMESRV (the
// name server's host:port) and ROCKETMQ_PROXY (the gRPC address of the
// rocketmq-proxy the broker runs in, for the RocketMQ 5 clients) to the
// command, waits for it, stops the servers and exits with the command's
// status. A variable that is already set in the
// environment is passed through and no server of that kind is started.
// TESTDB_ONLY, a comma-separated list of mysql (or mariadb), postgres and
// rocketmq, starts only those (TESTDB_ONLY=mysql,postgres: no Java needed);
// any other word is an error. With no command it prints the variables and
// keeps the servers up until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/throwaway"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	only, err := parseOnly(os.Getenv("TESTDB_ONLY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
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
		env, value string
		stop       func() error
		err        error
	}
	var starts []chan started
	launch := func(env, kind string, start func(context.Context) (value string, stop func() error, err error)) {
		if os.Getenv(env) != "" || (only != nil && !only[kind]) {
			return
		}
		ch := make(chan started, 1)
		starts = append(starts, ch)
		go func() {
			value, stop, err := start(ctx)
			ch <- started{env, value, stop, err}
		}()
	}
	launch("MYSQL_DSN", "mysql", database(throwaway.MariaDB))
	launch("POSTGRES_DSN", "postgres", database(throwaway.PostgreSQL))
	launch("ROCKETMQ_NAMESRV", "rocketmq", func(ctx context.Context) (string, func() error, error) {
		begin := time.Now()
		r, err := throwaway.ApacheRocketMQ(ctx, throwaway.WithProxy())
		if err != nil {
			return "", nil, err
		}
		// The same broker, through its proxy, for exactlyoncev5's tests.
		os.Setenv("ROCKETMQ_PROXY", r.Proxy())
		fmt.Fprintf(os.Stderr, "testdb: ROCKETMQ_PROXY=%s\n", r.Proxy())
		fmt.Fprintf(os.Stderr, "testdb: Apache RocketMQ %s up in %v\n", throwaway.ApacheRocketMQVersion, time.Since(begin).Round(100*time.Millisecond))
		return r.NameServer(), r.Stop, nil
	})

	var stops []func() error
	defer func() {
		for _, stop := range stops {
			if err := stop(); err != nil {
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
		stops = append(stops, st.stop)
		os.Setenv(st.env, st.value)
		fmt.Fprintf(os.Stderr, "testdb: %s=%s\n", st.env, st.value)
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
	err = cmd.Wait()
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

// parseOnly reads TESTDB_ONLY: nil (start every kind) when empty, else the
// set of kinds it names.
func parseOnly(v string) (map[string]bool, error) {
	if v == "" {
		return nil, nil
	}
	only := map[string]bool{}
	for _, kind := range strings.Split(v, ",") {
		switch kind = strings.TrimSpace(kind); kind {
		case "mysql", "mariadb":
			only["mysql"] = true
		case "postgres", "rocketmq":
			only[kind] = true
		default:
			return nil, fmt.Errorf("TESTDB_ONLY=%q: %q is none of mysql (or mariadb), postgres, rocketmq", v, kind)
		}
	}
	return only, nil
}

// database adapts a throwaway database's start function to launch's.
func database(start func(context.Context) (*throwaway.Server, error)) func(context.Context) (string, func() error, error) {
	return func(ctx context.Context) (string, func() error, error) {
		s, err := start(ctx)
		if err != nil {
			return "", nil, err
		}
		return s.DSN(), s.Stop, nil
	}
}

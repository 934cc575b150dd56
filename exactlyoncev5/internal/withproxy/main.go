// Command withproxy runs a command with a throwaway Apache RocketMQ name
// server and proxy (local mode) of package proxytest, exporting
// ROCKETMQ_PROXY, ROCKETMQ_NAMESRV, ROCKETMQ_BROKER and ROCKETMQ_LIB to it,
// and stops them when the command exits, with its status:
//
//	go run ./internal/withproxy go test ./...
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyoncev5/internal/proxytest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: withproxy command [args...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	p, err := proxytest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Stop()
	fmt.Fprintf(os.Stderr, "withproxy: Apache RocketMQ %s proxy at %s (name server %s)\n", proxytest.Version, p.Endpoint, p.NameServer)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), p.Env()...)
	// Interrupts go to the command; the proxy is stopped after it exits.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

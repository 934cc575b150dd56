// Command mktopic creates a topic on every master broker of a RocketMQ
// cluster, unless it exists, and waits until the name server serves its
// route. scripts/demo.sh uses it before the price-change demo starts its
// consumers on a real broker (a client refuses to start on a topic without
// a route); elsewhere, mqadmin updateTopic does the same.
//
//	go run ./internal/mktopic -namesrv host:port -topic NAME [-queues N]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

func main() {
	nameServer := flag.String("namesrv", os.Getenv("ROCKETMQ_NAMESRV"), "name server `host:port` (default $ROCKETMQ_NAMESRV)")
	topic := flag.String("topic", "", "topic to create")
	queues := flag.Int("queues", 8, "queues of the topic on each master broker")
	flag.Parse()
	if *nameServer == "" || *topic == "" || *queues < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "mktopic: -namesrv (or $ROCKETMQ_NAMESRV) and -topic are required, -queues must be at least 1, and no arguments are taken")
		flag.Usage()
		os.Exit(2)
	}
	created, err := remoting.EnsureTopic(context.Background(), *nameServer, *topic, *queues)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mktopic:", err)
		os.Exit(1)
	}
	if created {
		fmt.Printf("mktopic: created topic %s with %d queues at %s\n", *topic, *queues, *nameServer)
	}
}

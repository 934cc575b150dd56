// Command mktopic creates a topic on every master broker of a RocketMQ
// cluster, unless it exists, and waits until the name server serves its
// route. scripts/demo.sh uses it before the price-change demo starts its
// consumers on a real broker (a client refuses to start on a topic without
// a route); elsewhere, mqadmin updateTopic does the same. With -fifo-group
// it creates a FIFO topic and that group as an orderly group, what the
// demo's v5 consumers need to get each product's changes in order
// (mqadmin: updateTopic -a +message.type=FIFO, updateSubGroup -o true).
//
//	go run ./internal/mktopic -namesrv host:port -topic NAME [-queues N] [-fifo-group GROUP]
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
	fifoGroup := flag.String("fifo-group", "", "create a FIFO topic, and this `group` as an orderly consumer group")
	flag.Parse()
	if *nameServer == "" || *topic == "" || *queues < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "mktopic: -namesrv (or $ROCKETMQ_NAMESRV) and -topic are required, -queues must be at least 1, and no arguments are taken")
		flag.Usage()
		os.Exit(2)
	}
	ctx := context.Background()
	var created bool
	var err error
	kind := "topic"
	if *fifoGroup != "" {
		kind = "FIFO topic"
		created, err = remoting.EnsureFIFOTopic(ctx, *nameServer, *topic, *fifoGroup, *queues)
	} else {
		created, err = remoting.EnsureTopic(ctx, *nameServer, *topic, *queues)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mktopic:", err)
		os.Exit(1)
	}
	if created {
		fmt.Printf("mktopic: created %s %s with %d queues at %s\n", kind, *topic, *queues, *nameServer)
		if *fifoGroup != "" {
			fmt.Printf("mktopic: created orderly group %s\n", *fifoGroup)
		}
	}
}

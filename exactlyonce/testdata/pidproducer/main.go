// Command pidproducer sends numbered messages through rocketmq-client-go's
// producer, for TestIntegrationTwoProducersSamePid: the test runs two of
// them in pid namespaces of their own (unshare --pid --fork), so that both
// are pid 1 on one host and the client's UNIQ_KEY (IP, pid cut to 16 bits,
// second, 16-bit counter) repeats between them.
//
//	pidproducer -namesrv ADDR -topic T -tag A -n 200 -start UNIXMS [-stamp]
//
// It sends one message to the topic "<T>-warmup" (so that the route and the
// connection are ready, and both processes have used the id counter
// alike), waits until -start, then sends -n messages with bodies
// "<tag>-<i>" one by one, with the plain producer or, with -stamp, through
// exactlyonce.WrapProducer. It prints "pid=<pid> sent=<n>".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

func main() {
	namesrv := flag.String("namesrv", "", "name server address")
	topic := flag.String("topic", "", "topic")
	tag := flag.String("tag", "A", "body prefix, also the producer group and instance name")
	n := flag.Int("n", 200, "messages to send")
	start := flag.Int64("start", 0, "when to start sending, Unix milliseconds")
	stamp := flag.Bool("stamp", false, "send through exactlyonce.WrapProducer")
	flag.Parse()
	rlog.SetLogLevel("error")
	if err := run(*namesrv, *topic, *tag, *n, *start, *stamp); err != nil {
		fmt.Fprintln(os.Stderr, "pidproducer:", err)
		os.Exit(1)
	}
}

func run(namesrv, topic, tag string, n int, start int64, stamp bool) error {
	p, err := rocketmq.NewProducer(
		producer.WithNameServer(primitive.NamesrvAddr{namesrv}),
		producer.WithGroupName("pidproducer_"+tag),
		producer.WithInstanceName("pidproducer_"+tag),
		producer.WithRetry(2),
	)
	if err != nil {
		return err
	}
	if stamp {
		p = exactlyonce.WrapProducer(p)
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.SendSync(ctx, primitive.NewMessage(topic+"-warmup", []byte(tag))); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	time.Sleep(time.Until(time.UnixMilli(start)))
	for i := range n {
		if _, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(fmt.Sprintf("%s-%d", tag, i)))); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	fmt.Printf("pid=%d sent=%d\n", os.Getpid(), n)
	return nil
}

package rocketmqtest_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/b74fc070/rocketmq-exactlyonce/rocketmqtest"
)

// BenchmarkRawSend measures the broker alone: one connection pipelines
// SEND_MESSAGE requests of 1 KiB (JSON headers, as rocketmq-client-go sends
// them) and reads the responses without decoding them.
func BenchmarkRawSend(b *testing.B) {
	broker := rocketmqtest.NewBroker(b, rocketmqtest.WithTopic("raw", 4))
	nc, err := net.Dial("tcp", broker.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	body := make([]byte, 1024)
	frames := make([][]byte, 4)
	for q := range frames {
		frames[q] = rocketmqtest.EncodeFrame(&rocketmqtest.Command{Code: rocketmqtest.CodeSendMessage, Language: "GO", Version: 317, Body: body,
			ExtFields: map[string]string{"producerGroup": "p", "topic": "raw", "queueId": strconv.Itoa(q), "sysFlag": "0",
				"bornTimestamp": "1700000000000", "flag": "0", "properties": "UNIQ_KEY\x01AC11000100002A9F0000000000000001\x02WAIT\x01true\x02"}})
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReader(nc)
		var prefix [4]byte
		for range b.N {
			if _, err := io.ReadFull(r, prefix[:]); err != nil {
				done <- err
				return
			}
			if _, err := r.Discard(int(binary.BigEndian.Uint32(prefix[:]))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w := bufio.NewWriter(nc)
	for i := range b.N {
		if _, err := w.Write(frames[i%4]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// The responses are not read, so count what was stored: a failing send
	// must not pass for a fast one.
	var stored int64
	for q := range frames {
		stored += broker.MaxOffset("raw", q)
	}
	if stored != int64(b.N) {
		b.Fatalf("%d messages stored for %d sends", stored, b.N)
	}
}

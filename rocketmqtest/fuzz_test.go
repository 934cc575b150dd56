package rocketmqtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

// seedFrames are frames as clients send them, whole and damaged, without the
// length prefix.
func seedFrames() [][]byte {
	strip := func(b []byte) []byte { return b[4:] }
	goSend := EncodeFrame(&Command{Code: CodeSendMessage, Language: "GO", Version: 317, Opaque: 1,
		ExtFields: map[string]string{"producerGroup": "p", "topic": "t", "queueId": "1", "sysFlag": "0",
			"bornTimestamp": "1700000000000", "flag": "0", "properties": "UNIQ_KEY\x01ABC\x02TAGS\x01a\x02"},
		Body: []byte("hello")})
	binaryPull := EncodeFrame(&Command{Code: CodePullMessage, Opaque: 2, Serialization: Binary,
		ExtFields: map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "0", "queueOffset": "0",
			"maxMsgNums": "32", "sysFlag": "2", "commitOffset": "0", "suspendTimeoutMillis": "20000"}})
	heartbeat := EncodeFrame(&Command{Code: CodeHeartbeat, Opaque: 3,
		Body: []byte(`{"clientID":"c","producerDataSet":[],"consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","subString":"a||b"}]}]}`)})
	// An independent client's SEND_MESSAGE_V2: numbers and booleans in
	// extFields, which EncodeFrame cannot write.
	numericHeader := `{"code":310,"language":"OTHER","version":401,"opaque":4,"flag":0,` +
		`"extFields":{"a":"p","b":"t","e":1,"f":0,"g":1700000000000,"h":0,"i":"","j":0,"k":false,"m":false,"x":null}}`
	numericSend := append(binary.BigEndian.AppendUint32(nil, uint32(len(numericHeader))), numericHeader...)
	numericSend = append(numericSend, "hello"...)
	return [][]byte{
		strip(goSend), strip(binaryPull), strip(heartbeat), numericSend,
		strip(goSend)[:20], strip(binaryPull)[:30],
		{0, 0, 0, 0},
		{1, 0, 0, 21, 0, 10, 9, 1, 61, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{1, 0, 0, 21, 0, 10, 9, 1, 61, 0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		{0, 0xff, 0xff, 0xff, '{'},
	}
}

// FuzzDecodeFrame checks that no input crashes the frame decoder, that the
// header length is bounds-checked, and that binary frames round-trip.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := DecodeFrame(data)
		if err != nil {
			return
		}
		if len(cmd.Body) > len(data) {
			t.Fatalf("body of %d bytes from a %d-byte frame", len(cmd.Body), len(data))
		}
		again, err := ReadFrame(bytes.NewReader(EncodeFrame(cmd)))
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if again.Code != cmd.Code || again.Opaque != cmd.Opaque || again.Flag != cmd.Flag || !bytes.Equal(again.Body, cmd.Body) {
			t.Fatalf("round trip changed the command: %+v -> %+v", cmd, again)
		}
		if cmd.Serialization == Binary && !sameCommand(cmd, again) {
			t.Fatalf("binary round trip changed the header: %+v -> %+v", cmd, again)
		}
	})
}

// TestReadFrame checks that ReadFrame refuses a length prefix the broker
// refuses, before reading on, and reports a frame cut short.
func TestReadFrame(t *testing.T) {
	whole := EncodeFrame(&Command{Code: 10, Opaque: 7, Body: []byte("body")})
	if cmd, err := ReadFrame(bytes.NewReader(whole)); err != nil || cmd.Code != 10 || cmd.Opaque != 7 || string(cmd.Body) != "body" {
		t.Fatalf("ReadFrame = %+v, %v", cmd, err)
	}
	if _, err := ReadFrame(bytes.NewReader(whole[:len(whole)-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut short: %v, want io.ErrUnexpectedEOF", err)
	}
	huge := binary.BigEndian.AppendUint32(nil, maxFrameLength+1)
	if _, err := ReadFrame(bytes.NewReader(huge)); !errors.Is(err, errFrame) {
		t.Errorf("length past the limit: %v, want errFrame", err)
	}
}

// FuzzJSONHeader checks the hand-written JSON header parser against
// encoding/json, and the encoder's output against both.
func FuzzJSONHeader(f *testing.F) {
	for _, s := range seedFrames() {
		if len(s) > 4 && s[0] == 0 {
			// The JSON header alone, without the body; a cut frame gives what
			// it has of its header.
			end := min(len(s), 4+int(binary.BigEndian.Uint32(s)&0xFFFFFF))
			f.Add(s[4:end])
		}
	}
	f.Add([]byte(`{"code":10,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"properties":"UNIQ_KEY\u0001A\u0002","x":"\"\\\/\b\f\n\r\t\u00e9"}}`))
	f.Add([]byte(` { "code" : -1 , "extFields" : { } } `))
	f.Add([]byte(`{"code":310,"extFields":{"e":1,"g":1234567890123,"k":false,"m":true,"x":1.50e-7,"y":null,"z":{"a":[1]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseJSONHeader(data)
		slow, err := decodeJSONHeaderSlow(data)
		if ok {
			if err != nil {
				t.Fatalf("fast path accepted what encoding/json rejects: %v", err)
			}
			if !sameCommand(fast, slow) {
				t.Fatalf("fast %+v, encoding/json %+v", fast, slow)
			}
		}
		if err != nil {
			return
		}
		enc := appendJSONHeader(nil, slow)
		back, ok := parseJSONHeader(enc)
		if !ok {
			back, err = decodeJSONHeaderSlow(enc)
			if err != nil {
				t.Fatalf("encoded header %q does not decode: %v", enc, err)
			}
		}
		if slow.Language == "" {
			slow.Language = "JAVA" // the encoder's default
		}
		if !sameCommand(back, slow) {
			t.Fatalf("round trip %+v -> %q -> %+v", slow, enc, back)
		}
	})
}

func sameCommand(a, b *Command) bool {
	if a.Code != b.Code || a.Version != b.Version || a.Opaque != b.Opaque || a.Flag != b.Flag ||
		a.Remark != b.Remark || a.Language != b.Language || len(a.ExtFields) != len(b.ExtFields) {
		return false
	}
	for k, v := range a.ExtFields {
		if w, ok := b.ExtFields[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// FuzzFrameLength checks the length prefix check used before allocating.
func FuzzFrameLength(f *testing.F) {
	f.Add(uint32(0))
	f.Add(uint32(16 << 20))
	f.Add(uint32(0x80000000))
	f.Fuzz(func(t *testing.T, n uint32) {
		var p [4]byte
		binary.BigEndian.PutUint32(p[:], n)
		l, err := frameLength(p)
		if err == nil && (l < 4 || l > maxFrameLength) {
			t.Fatalf("length %d accepted", l)
		}
	})
}

// FuzzHandleRequest feeds decoded frames to the request handlers, which must
// answer or ignore anything without panicking.
func FuzzHandleRequest(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	b, err := New(WithTopic("t", 2))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(b.Close)
	client, server := net.Pipe()
	f.Cleanup(func() { client.Close(); server.Close() })
	c := newConn(b, server)
	c.remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}
	b.do(func(s *state) { s.conns[c] = true })
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := DecodeFrame(data)
		if err != nil {
			return
		}
		b.do(func(s *state) {
			s.conns[c] = true
			s.handle(&inbound{c: c, cmd: cmd})
			c.mu.Lock()
			c.out = nil // nobody writes them
			c.mu.Unlock()
		})
	})
}

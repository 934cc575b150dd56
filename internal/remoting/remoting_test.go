package remoting

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// serve answers one request per connection on a loopback listener with
// respond's header and body, after checking the request's frame.
func serve(t *testing.T, respond func(t *testing.T, code int, ext map[string]string, body []byte) (map[string]any, []byte)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				var prefix [8]byte
				if _, err := io.ReadFull(conn, prefix[:]); err != nil {
					t.Error(err)
					return
				}
				total, headerLen := binary.BigEndian.Uint32(prefix[:4]), binary.BigEndian.Uint32(prefix[4:])
				if prefix[4] != 0 {
					t.Errorf("serialization type %d, want 0 (JSON)", prefix[4])
				}
				rest := make([]byte, total-4)
				if _, err := io.ReadFull(conn, rest); err != nil {
					t.Error(err)
					return
				}
				var req struct {
					Code      int               `json:"code"`
					Opaque    int32             `json:"opaque"`
					Flag      int               `json:"flag"`
					ExtFields map[string]string `json:"extFields"`
				}
				if err := json.Unmarshal(rest[:headerLen], &req); err != nil {
					t.Errorf("request header %q: %v", rest[:headerLen], err)
					return
				}
				header, body := respond(t, req.Code, req.ExtFields, rest[headerLen:])
				header["flag"] = 1 // a response
				header["opaque"] = req.Opaque
				h, _ := json.Marshal(header)
				frame := binary.BigEndian.AppendUint32(nil, uint32(4+len(h)+len(body)))
				frame = binary.BigEndian.AppendUint32(frame, uint32(len(h)))
				_, _ = conn.Write(append(append(frame, h...), body...))
			}()
		}
	}()
	return l.Addr().String()
}

func TestCall(t *testing.T) {
	addr := serve(t, func(t *testing.T, code int, ext map[string]string, body []byte) (map[string]any, []byte) {
		switch code {
		case QueryConsumerOffset:
			if ext["consumerGroup"] != "g" || ext["topic"] != "t" || ext["queueId"] != "3" {
				t.Errorf("query offset fields %v", ext)
			}
			if ext["consumerGroup"] == "g" {
				return map[string]any{"code": Success, "extFields": map[string]string{"offset": "42"}}, nil
			}
		case GetConsumerListByGroup:
			if ext["consumerGroup"] == "none" {
				return map[string]any{"code": 1, "remark": "no consumer for this group, none"}, nil
			}
			return map[string]any{"code": Success}, []byte(`{"consumerIdList":["a@1","b@2"]}`)
		case GetMaxOffset:
			return map[string]any{"code": TopicNotExist, "remark": "no topic"}, nil
		case UpdateAndCreateTopic:
			return map[string]any{"code": 26, "remark": "refused"}, nil
		}
		return map[string]any{"code": 1, "remark": "unexpected"}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if off, ok, err := CommittedOffset(ctx, addr, "g", "t", 3); err != nil || !ok || off != 42 {
		t.Errorf("CommittedOffset = %d, %v, %v; want 42, true, nil", off, ok, err)
	}
	if ids, err := ConsumerIDs(ctx, addr, "g"); err != nil || len(ids) != 2 || ids[1] != "b@2" {
		t.Errorf("ConsumerIDs = %v, %v", ids, err)
	}
	if ids, err := ConsumerIDs(ctx, addr, "none"); err != nil || len(ids) != 0 {
		t.Errorf("ConsumerIDs of a group without consumers = %v, %v; want none", ids, err)
	}
	if off, err := MaxOffset(ctx, addr, "missing", 0); err != nil || off != 0 {
		t.Errorf("MaxOffset of a missing topic = %d, %v; want 0, nil", off, err)
	}
	err := CreateTopic(ctx, addr, "t", 2)
	var re *Error
	if !errors.As(err, &re) || re.Code != 26 || re.Remark != "refused" {
		t.Errorf("CreateTopic refused: %v, want an *Error with code 26", err)
	}
}

func TestCallUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Call(ctx, addr, GetMaxOffset, nil, nil); err == nil {
		t.Error("Call to a closed port succeeded")
	}
}

// The binary header decodes back to what was encoded: requests and
// responses share the layout.
func TestBinaryHeader(t *testing.T) {
	ext := map[string]string{"topic": "t", "queueId": "3", "empty": ""}
	r, err := decodeBinaryHeader(encodeBinaryHeader(GetMaxOffset, 7, ext))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != GetMaxOffset || r.Opaque != 7 || r.Flag != 0 || r.Remark != "" || len(r.ExtFields) != len(ext) {
		t.Fatalf("decoded %+v", r)
	}
	for k, v := range ext {
		if r.ExtFields[k] != v {
			t.Errorf("%s = %q, want %q", k, r.ExtFields[k], v)
		}
	}
	if _, err := decodeBinaryHeader(encodeBinaryHeader(GetMaxOffset, 7, ext)[:20]); err == nil {
		t.Error("a truncated header decoded")
	}
}

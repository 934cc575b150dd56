// Package remoting sends single RocketMQ remoting requests, with JSON or
// binary headers, for the project's test tooling: the readiness probe of the
// throwaway Apache RocketMQ and the broker queries that rocketmq-client-go's
// admin API lacks (committed offsets, a group's consumers, a queue's end);
// for the raw half of the differential test of rocketmqtest against it; for
// exactlyonce's send-backs, whose response code rocketmq-client-go v2.1.2
// ignores (a failure path: one connection each is cheap enough); and for
// creating a topic, or a FIFO topic and its orderly group, on a real
// cluster (internal/mktopic).
//
// It is written from the protocol, independently of rocketmqtest, so that
// what the tests read from the real broker does not go through the fake's
// own code. One request per connection: slow, but simple, and enough for
// tests that poll a few times a second.
package remoting

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"time"
)

// Request codes used by the project's tooling (RequestCode in the Java
// broker).
const (
	SendMessage             = 10
	PullMessage             = 11
	QueryConsumerOffset     = 14
	UpdateConsumerOffset    = 15
	UpdateAndCreateTopic    = 17
	GetBrokerRuntimeInfo    = 28
	SearchOffsetByTimestamp = 29
	GetMaxOffset            = 30
	GetMinOffset            = 31
	HeartBeat               = 34
	ConsumerSendMsgBack     = 36
	GetConsumerListByGroup  = 38
	LockBatchMQ             = 41
	UnlockBatchMQ           = 42
	GetRouteInfoByTopic     = 105
	GetBrokerClusterInfo    = 106
	UpdateAndCreateGroup    = 200
	InvokeBrokerResetOffset = 222
	SendMessageV2           = 310
)

// Response codes (ResponseCode in the Java broker).
const (
	Success          = 0
	TopicNotExist    = 17
	QueryNotFound    = 22
	ConsumerNotExist = 206
)

// Response is a broker's or name server's answer.
type Response struct {
	Code      int               `json:"code"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    string            `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
	Body      []byte            `json:"-"`
	// Serialization is the encoding the response's header came in.
	Serialization Serialization `json:"-"`
}

// Int returns the header field key as an integer.
func (r *Response) Int(key string) (int64, error) {
	v, ok := r.ExtFields[key]
	if !ok {
		return 0, fmt.Errorf("remoting: response has no %s", key)
	}
	return strconv.ParseInt(v, 10, 64)
}

// Error describes a response whose code is not the one the caller wanted.
type Error struct {
	Request  int
	Code     int
	Remark   string
	Expected int
}

func (e *Error) Error() string {
	return fmt.Sprintf("remoting: request %d answered code %d (%s), want %d", e.Request, e.Code, e.Remark, e.Expected)
}

// Serialization is the encoding of a frame's header: the JSON one the Go
// and Java clients send by default, or the binary ROCKETMQ one
// (RocketMQSerializable in Java). A broker answers in the request's.
type Serialization byte

const (
	JSON   Serialization = 0 // JSON (RemotingSerializable)
	Binary Serialization = 1 // ROCKETMQ (RocketMQSerializable)
)

// Call sends request code with the header fields ext and body to addr and
// returns the response, whatever its code. ctx bounds the whole exchange.
func Call(ctx context.Context, addr string, code int, ext map[string]string, body []byte) (*Response, error) {
	return CallAs(ctx, addr, JSON, code, ext, body)
}

// CallAs is Call with the header encoded as ser.
func CallAs(ctx context.Context, addr string, ser Serialization, code int, ext map[string]string, body []byte) (*Response, error) {
	c, err := Dial(ctx, addr, ser)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Call(ctx, code, ext, body)
}

// Conn is one connection to a broker or name server, for requests whose
// effect lasts as long as their connection: a heartbeat registers its
// client until the connection closes. Not safe for concurrent use.
type Conn struct {
	nc     net.Conn
	addr   string
	ser    Serialization
	opaque int32
}

// Dial connects to addr; requests on the connection have headers encoded as
// ser.
func Dial(ctx context.Context, addr string, ser Serialization) (*Conn, error) {
	if ser > Binary {
		return nil, fmt.Errorf("remoting: unknown serialization %d", ser)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, addr: addr, ser: ser}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Call sends request code with the header fields ext and body, and returns
// its response, whatever its code. Requests the server sends meanwhile
// (NOTIFY_CONSUMER_IDS_CHANGED to a consumer's connection) are read and
// dropped. ctx's deadline (else 10 s) bounds the exchange.
func (c *Conn) Call(ctx context.Context, code int, ext map[string]string, body []byte) (*Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = c.nc.SetDeadline(deadline)
	c.opaque++
	var header []byte
	if c.ser == JSON {
		var err error
		header, err = json.Marshal(struct {
			Code      int               `json:"code"`
			Language  string            `json:"language"`
			Version   int               `json:"version"`
			Opaque    int32             `json:"opaque"`
			Flag      int               `json:"flag"`
			ExtFields map[string]string `json:"extFields"`
		}{Code: code, Language: "GO", Version: 317, Opaque: c.opaque, ExtFields: ext})
		if err != nil {
			return nil, err
		}
	} else {
		header = encodeBinaryHeader(code, c.opaque, ext)
	}
	// Frame: total length (header length field + header + body), then the
	// header length with the serialization type in its top byte.
	frame := make([]byte, 8, 8+len(header)+len(body))
	binary.BigEndian.PutUint32(frame[0:4], uint32(4+len(header)+len(body)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(c.ser)<<24|uint32(len(header)))
	frame = append(append(frame, header...), body...)
	if _, err := c.nc.Write(frame); err != nil {
		return nil, err
	}
	for {
		r, err := c.read()
		if err != nil {
			return nil, fmt.Errorf("remoting: reading the response to request %d from %s: %w", code, c.addr, err)
		}
		if r.Flag&flagResponse != 0 && r.Opaque == c.opaque {
			return r, nil
		}
	}
}

// flagResponse is the flag bit of a response (RemotingCommand's RPC_TYPE).
const flagResponse = 1

// read reads one frame.
func (c *Conn) read() (*Response, error) {
	var prefix [8]byte
	if _, err := io.ReadFull(c.nc, prefix[:]); err != nil {
		return nil, err
	}
	total := binary.BigEndian.Uint32(prefix[0:4])
	headerLen := binary.BigEndian.Uint32(prefix[4:8]) & 0xffffff
	// The response's serialization is the server's choice: the Java
	// broker answers JSON (its default) whatever the request's was.
	ser := Serialization(prefix[4])
	if ser > Binary || headerLen+4 > total || total > 64<<20 {
		return nil, fmt.Errorf("not a remoting frame (length %d, header %x)", total, prefix[4:8])
	}
	rest := make([]byte, total-4)
	if _, err := io.ReadFull(c.nc, rest); err != nil {
		return nil, err
	}
	var (
		r   *Response
		err error
	)
	if ser == JSON {
		r = new(Response)
		err = json.Unmarshal(rest[:headerLen], r)
	} else {
		r, err = decodeBinaryHeader(rest[:headerLen])
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	r.Body = rest[headerLen:]
	r.Serialization = ser
	return r, nil
}

// encodeBinaryHeader encodes a request header as RocketMQSerializable does:
//
//	int16 code | int8 language | int16 version | int32 opaque | int32 flag |
//	int32 remarkLen | remark | int32 extLen | (int16 keyLen | key | int32 valueLen | value)...
func encodeBinaryHeader(code int, opaque int32, ext map[string]string) []byte {
	var fields []byte
	for k, v := range ext {
		fields = binary.BigEndian.AppendUint16(fields, uint16(len(k)))
		fields = append(fields, k...)
		fields = binary.BigEndian.AppendUint32(fields, uint32(len(v)))
		fields = append(fields, v...)
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	b = append(b, 9) // LanguageCode.GO
	b = binary.BigEndian.AppendUint16(b, 317)
	b = binary.BigEndian.AppendUint32(b, uint32(opaque))
	b = binary.BigEndian.AppendUint32(b, 0) // flag: a request, not one-way
	b = binary.BigEndian.AppendUint32(b, 0) // no remark
	b = binary.BigEndian.AppendUint32(b, uint32(len(fields)))
	return append(b, fields...)
}

// decodeBinaryHeader reads a response header encoded as encodeBinaryHeader
// describes.
func decodeBinaryHeader(b []byte) (*Response, error) {
	short := errors.New("binary header too short")
	if len(b) < 17 {
		return nil, short
	}
	r := &Response{
		Code:   int(int16(binary.BigEndian.Uint16(b))),
		Opaque: int32(binary.BigEndian.Uint32(b[5:])),
		Flag:   int32(binary.BigEndian.Uint32(b[9:])),
	}
	b = b[13:] // code, language, version, opaque, flag
	n := int(binary.BigEndian.Uint32(b))
	if len(b) < 4+n+4 {
		return nil, short
	}
	r.Remark, b = string(b[4:4+n]), b[4+n:]
	n = int(binary.BigEndian.Uint32(b))
	if len(b) < 4+n {
		return nil, short
	}
	ext := b[4 : 4+n]
	if n > 0 {
		r.ExtFields = map[string]string{}
	}
	for len(ext) > 0 {
		if len(ext) < 2 {
			return nil, short
		}
		kl := int(binary.BigEndian.Uint16(ext))
		if len(ext) < 2+kl+4 {
			return nil, short
		}
		k := string(ext[2 : 2+kl])
		ext = ext[2+kl:]
		vl := int(binary.BigEndian.Uint32(ext))
		if len(ext) < 4+vl {
			return nil, short
		}
		r.ExtFields[k], ext = string(ext[4:4+vl]), ext[4+vl:]
	}
	return r, nil
}

// Expect calls Call and turns a response whose code is not want into an
// *Error.
func Expect(ctx context.Context, addr string, code int, ext map[string]string, body []byte, want int) (*Response, error) {
	r, err := Call(ctx, addr, code, ext, body)
	if err != nil {
		return nil, err
	}
	if r.Code != want {
		return r, &Error{Request: code, Code: r.Code, Remark: r.Remark, Expected: want}
	}
	return r, nil
}

// Topic permissions (PermName in the Java broker).
const (
	PermRead      = 4
	PermReadWrite = 6
)

// CreateTopic creates (or updates) topic on the broker at brokerAddr with
// queues read and write queues, readable and writable.
func CreateTopic(ctx context.Context, brokerAddr, topic string, queues int) error {
	return CreateTopicPerm(ctx, brokerAddr, topic, queues, PermReadWrite)
}

// CreateTopicPerm is CreateTopic with the permission perm.
func CreateTopicPerm(ctx context.Context, brokerAddr, topic string, queues, perm int) error {
	return createTopic(ctx, brokerAddr, topic, queues, perm, "")
}

// CreateFIFOTopic is CreateTopic for a FIFO topic: one with the attribute
// message.type=FIFO, which RocketMQ 5's proxy checks the messages of v5
// producers against (a message with a message group is FIFO).
func CreateFIFOTopic(ctx context.Context, brokerAddr, topic string, queues int) error {
	return createTopic(ctx, brokerAddr, topic, queues, PermReadWrite, "+message.type=FIFO")
}

func createTopic(ctx context.Context, brokerAddr, topic string, queues, perm int, attributes string) error {
	n := strconv.Itoa(queues)
	ext := map[string]string{
		"topic":           topic,
		"defaultTopic":    "TBW102",
		"readQueueNums":   n,
		"writeQueueNums":  n,
		"perm":            strconv.Itoa(perm),
		"topicFilterType": "SINGLE_TAG",
		"topicSysFlag":    "0",
		"order":           "false",
	}
	if attributes != "" {
		ext["attributes"] = attributes
	}
	_, err := Expect(ctx, brokerAddr, UpdateAndCreateTopic, ext, nil, Success)
	return err
}

// CreateOrderlyGroup creates (or updates) group on the broker at brokerAddr
// as an orderly group (consumeMessageOrderly): RocketMQ 5's proxy tells
// the group's v5 consumers to consume each message group of a FIFO topic
// in order. The Go admin API cannot create groups.
func CreateOrderlyGroup(ctx context.Context, brokerAddr, group string) error {
	body, err := json.Marshal(map[string]any{
		"groupName":                      group,
		"consumeEnable":                  true,
		"consumeFromMinEnable":           true,
		"consumeBroadcastEnable":         true,
		"consumeMessageOrderly":          true,
		"retryQueueNums":                 1,
		"retryMaxTimes":                  16,
		"brokerId":                       0,
		"whichBrokerWhenConsumeSlowly":   1,
		"notifyConsumerIdsChangedEnable": true,
	})
	if err != nil {
		return err
	}
	_, err = Expect(ctx, brokerAddr, UpdateAndCreateGroup, nil, body, Success)
	return err
}

// masterAddr matches a master's entry (broker id 0) in the brokerAddrs
// tables of the name server's JSON text, whose numeric keys encoding/json
// does not read.
var masterAddr = regexp.MustCompile(`[{,]0:"([^"]+)"`)

// MasterAddrs returns the addresses of the master brokers registered with
// the name server at namesrvAddr.
func MasterAddrs(ctx context.Context, namesrvAddr string) ([]string, error) {
	r, err := Expect(ctx, namesrvAddr, GetBrokerClusterInfo, nil, nil, Success)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, m := range masterAddr.FindAllSubmatch(r.Body, -1) {
		addrs = append(addrs, string(m[1]))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("remoting: the name server at %s knows no master broker", namesrvAddr)
	}
	return addrs, nil
}

// Route returns the route of topic from the name server at namesrvAddr, as
// the name server's JSON text (its broker address tables have numeric keys,
// which encoding/json does not read, so it is left to the caller).
func Route(ctx context.Context, namesrvAddr, topic string) ([]byte, error) {
	r, err := Expect(ctx, namesrvAddr, GetRouteInfoByTopic, map[string]string{"topic": topic}, nil, Success)
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// CommittedOffset returns the offset group committed for queue of topic on
// the broker at brokerAddr, and false when it has none.
func CommittedOffset(ctx context.Context, brokerAddr, group, topic string, queue int) (int64, bool, error) {
	r, err := Call(ctx, brokerAddr, QueryConsumerOffset, map[string]string{
		"consumerGroup": group,
		"topic":         topic,
		"queueId":       strconv.Itoa(queue),
	}, nil)
	switch {
	case err != nil:
		return 0, false, err
	case r.Code == QueryNotFound:
		return 0, false, nil
	case r.Code != Success:
		return 0, false, &Error{Request: QueryConsumerOffset, Code: r.Code, Remark: r.Remark}
	}
	off, err := r.Int("offset")
	return off, err == nil, err
}

// MaxOffset returns the offset past the last message of queue of topic on
// the broker at brokerAddr (0 for a topic the broker does not have).
func MaxOffset(ctx context.Context, brokerAddr, topic string, queue int) (int64, error) {
	r, err := Call(ctx, brokerAddr, GetMaxOffset, map[string]string{
		"topic":   topic,
		"queueId": strconv.Itoa(queue),
	}, nil)
	switch {
	case err != nil:
		return 0, err
	case r.Code == TopicNotExist:
		return 0, nil
	case r.Code != Success:
		return 0, &Error{Request: GetMaxOffset, Code: r.Code, Remark: r.Remark}
	}
	return r.Int("offset")
}

// ConsumerIDs returns the client ids of group's consumers connected to the
// broker at brokerAddr.
func ConsumerIDs(ctx context.Context, brokerAddr, group string) ([]string, error) {
	r, err := Call(ctx, brokerAddr, GetConsumerListByGroup, map[string]string{"consumerGroup": group}, nil)
	switch {
	case err != nil:
		return nil, err
	case r.Code == ConsumerNotExist || r.Code == 1 && len(r.Body) == 0:
		// 1 (SYSTEM_ERROR, "no consumer for this group") is what 5.x
		// answers for a group that never had, or no longer has, a consumer.
		return nil, nil
	case r.Code != Success:
		return nil, &Error{Request: GetConsumerListByGroup, Code: r.Code, Remark: r.Remark}
	}
	var body struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, fmt.Errorf("remoting: consumer list of %s: %w", group, err)
	}
	return body.ConsumerIDList, nil
}

// ResetOffsets rewinds group's offsets of topic on the broker at brokerAddr
// to the first message stored at or after ts, the way mqadmin
// resetOffsetByTime does: the broker updates the stored offsets and tells
// the group's running consumers to reset theirs.
func ResetOffsets(ctx context.Context, brokerAddr, group, topic string, ts time.Time) error {
	_, err := Expect(ctx, brokerAddr, InvokeBrokerResetOffset, map[string]string{
		"topic":     topic,
		"group":     group,
		"timestamp": strconv.FormatInt(ts.UnixMilli(), 10),
		"isForce":   "true",
	}, nil, Success)
	return err
}

// BrokerVersion returns the release of the broker at brokerAddr as it
// reports it ("V5_3_3").
func BrokerVersion(ctx context.Context, brokerAddr string) (string, error) {
	r, err := Expect(ctx, brokerAddr, GetBrokerRuntimeInfo, nil, nil, Success)
	if err != nil {
		return "", err
	}
	var body struct {
		Table map[string]string `json:"table"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return "", fmt.Errorf("remoting: runtime info of %s: %w", brokerAddr, err)
	}
	v, ok := body.Table["brokerVersionDesc"]
	if !ok {
		return "", fmt.Errorf("remoting: runtime info of %s has no brokerVersionDesc", brokerAddr)
	}
	return v, nil
}

// EnsureTopic creates topic with queues queues on every master broker of the
// cluster, unless the name server already serves a route for it, and waits
// for that route: the consumers start before anything is published, and a
// client refuses to start on a topic without a route (auto-creation, where
// the broker allows it, happens only at the first send). An existing topic
// is left as it is.
//
// rocketmq-client-go v2.1.2's admin API creates a topic on a broker address
// but cannot list the brokers.
func EnsureTopic(ctx context.Context, nameServer, topic string, queues int) (created bool, err error) {
	return ensure(ctx, nameServer, topic, func(ctx context.Context, addr string) error {
		return CreateTopic(ctx, addr, topic, queues)
	})
}

// EnsureFIFOTopic is EnsureTopic for a FIFO topic (CreateFIFOTopic) and
// group, created on every master as an orderly group (CreateOrderlyGroup):
// what a v5 consumer of message groups in order needs. With an existing
// topic the group is not created either.
func EnsureFIFOTopic(ctx context.Context, nameServer, topic, group string, queues int) (created bool, err error) {
	return ensure(ctx, nameServer, topic, func(ctx context.Context, addr string) error {
		if err := CreateFIFOTopic(ctx, addr, topic, queues); err != nil {
			return err
		}
		return CreateOrderlyGroup(ctx, addr, group)
	})
}

// ensure runs create for every master broker unless topic has a route, and
// waits for the route.
func ensure(ctx context.Context, nameServer, topic string, create func(ctx context.Context, brokerAddr string) error) (created bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := Route(ctx, nameServer, topic); err == nil {
		return false, nil
	}
	masters, err := MasterAddrs(ctx, nameServer)
	if err != nil {
		return false, fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, addr := range masters {
		if err := create(ctx, addr); err != nil {
			return false, fmt.Errorf("create topic %s on the broker at %s: %w", topic, addr, err)
		}
	}
	for {
		_, err := Route(ctx, nameServer, topic)
		if err == nil {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("topic %s created, but the name server at %s serves no route for it: %w", topic, nameServer, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package rocketmqtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Frame layout of the remoting protocol, both directions:
//
//	int32 length            bytes that follow this field
//	int32 serializeType<<24 | headerLength
//	header                  JSON or the binary ROCKETMQ layout
//	body                    length - 4 - headerLength bytes
//
// The binary ROCKETMQ header (RocketMQSerializable in the Java broker) is
//
//	int16 code | int8 language | int16 version | int32 opaque | int32 flag |
//	int32 remarkLen | remark | int32 extLen | ext
//
// where ext repeats int16 keyLen | key | int32 valueLen | value.

// Serialization is the header encoding of a remoting frame.
type Serialization byte

const (
	// JSON is the header encoding the Go and Java clients use by default.
	JSON Serialization = 0
	// Binary is the compact ROCKETMQ header encoding (RocketMQSerializable).
	Binary Serialization = 1
)

const (
	// maxFrameLength is the Java broker's default frame limit
	// (com.rocketmq.remoting.frameMaxLength, 16 MiB).
	maxFrameLength = 16 << 20
	// Flag bits of a command (RemotingCommand.RPC_TYPE and RPC_ONEWAY).
	flagResponse = 1 << 0
	flagOneway   = 1 << 1
	// brokerVersion is the version field of the broker's responses; clients
	// read it as the broker version and only compare it with 0 (V4_1_0).
	brokerVersion = 401
)

// Command is one remoting command: a request, a response, or a broker-to-client
// request. Control functions (see [Broker.ControlKey]) receive and return it.
type Command struct {
	Code      int16
	Language  string // "GO", "JAVA", ...; informational
	Version   int16
	Opaque    int32
	Flag      int32
	Remark    string
	ExtFields map[string]string
	Body      []byte

	// Serialization is the header encoding the command arrived in, or is
	// written in: the broker writes JSON, as the Java broker does by
	// default, whatever the request's.
	Serialization Serialization
}

// Oneway reports whether the sender expects no response.
func (c *Command) Oneway() bool { return c.Flag&flagOneway != 0 }

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool { return c.Flag&flagResponse != 0 }

// ext returns an extension field.
func (c *Command) ext(key string) string { return c.ExtFields[key] }

// extBool reads an extension field holding a Java boolean as
// Boolean.parseBoolean does: "true" in any case is true, anything else,
// a missing field included, false.
func (c *Command) extBool(key string) bool { return strings.EqualFold(c.ExtFields[key], "true") }

// extInt returns an extension field holding a Java long.
func (c *Command) extInt(key string) (int64, error) {
	return c.extIntBits(key, 64)
}

// extIntOr is extInt with def for a missing field.
func (c *Command) extIntOr(key string, def int64) (int64, error) {
	if _, ok := c.ExtFields[key]; !ok {
		return def, nil
	}
	return c.extInt(key)
}

// extInt32 returns an extension field holding a Java int; a value out of the
// int32 range is an error, not truncated.
func (c *Command) extInt32(key string) (int32, error) {
	n, err := c.extIntBits(key, 32)
	return int32(n), err
}

// extInt32Or is extInt32 with def for a missing field.
func (c *Command) extInt32Or(key string, def int32) (int32, error) {
	if _, ok := c.ExtFields[key]; !ok {
		return def, nil
	}
	return c.extInt32(key)
}

func (c *Command) extIntBits(key string, bits int) (int64, error) {
	v, ok := c.ExtFields[key]
	if !ok {
		return 0, fmt.Errorf("missing header field %q", key)
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("header field %q: %w", key, err)
	}
	return n, nil
}

// errFrame reports a malformed frame; the connection that sent it is closed.
var errFrame = errors.New("rocketmqtest: malformed frame")

// frameLength validates the 4-byte length prefix of a frame.
func frameLength(prefix [4]byte) (int, error) {
	n := int32(binary.BigEndian.Uint32(prefix[:]))
	if n < 4 || n > maxFrameLength {
		return 0, fmt.Errorf("%w: length %d", errFrame, n)
	}
	return int(n), nil
}

// DecodeFrame decodes one frame without its 4-byte length prefix: the
// header mark, the header and the body. The body aliases data. Tests and
// tools use it to speak to the broker directly.
func DecodeFrame(data []byte) (*Command, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", errFrame, len(data))
	}
	mark := binary.BigEndian.Uint32(data)
	ser := Serialization(mark >> 24)
	headerLen := int(mark & 0xFFFFFF)
	if headerLen > len(data)-4 {
		return nil, fmt.Errorf("%w: header length %d exceeds frame", errFrame, headerLen)
	}
	header := data[4 : 4+headerLen]
	var (
		cmd *Command
		err error
	)
	switch ser {
	case JSON:
		cmd, err = decodeJSONHeader(header)
	case Binary:
		cmd, err = decodeBinaryHeader(header)
	default:
		err = fmt.Errorf("%w: serialize type %d", errFrame, ser)
	}
	if err != nil {
		return nil, err
	}
	cmd.Serialization = ser
	if body := data[4+headerLen:]; len(body) > 0 {
		cmd.Body = body
	}
	return cmd, nil
}

// jsonHeader is the JSON header as both Java (fastjson) and Go clients write
// it, for encoding/json; see jsonheader.go for the fast path.
type jsonHeader struct {
	Code      int16                      `json:"code"`
	Language  json.RawMessage            `json:"language,omitempty"`
	Version   int16                      `json:"version"`
	Opaque    int32                      `json:"opaque"`
	Flag      int32                      `json:"flag"`
	Remark    string                     `json:"remark,omitempty"`
	ExtFields map[string]json.RawMessage `json:"extFields,omitempty"`
}

func decodeJSONHeader(b []byte) (*Command, error) {
	if cmd, ok := parseJSONHeader(b); ok {
		return cmd, nil
	}
	return decodeJSONHeaderSlow(b)
}

// decodeJSONHeaderSlow decodes any JSON header encoding/json accepts.
func decodeJSONHeaderSlow(b []byte) (*Command, error) {
	var h jsonHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	cmd := &Command{
		Code:      h.Code,
		Version:   h.Version,
		Opaque:    h.Opaque,
		Flag:      h.Flag,
		Remark:    h.Remark,
		ExtFields: make(map[string]string, len(h.ExtFields)),
	}
	var lang string
	if json.Unmarshal(h.Language, &lang) == nil {
		cmd.Language = lang
	}
	for k, raw := range h.ExtFields {
		v, ok, err := extText(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: extFields %q: %v", errFrame, k, err)
		}
		if ok {
			cmd.ExtFields[k] = v
		}
	}
	return cmd, nil
}

// extText returns the text the Java broker reads from one extFields value,
// and false for null, which the Java broker treats as a missing field.
// fastjson reads extFields as a HashMap<String, String> and turns any other
// value into text: a number as javaNumberText says, a boolean as "true" or
// "false", an object or array as its JSON text (compacted here; fastjson
// writes it out again, maybe with its keys in another order).
func extText(raw json.RawMessage) (string, bool, error) {
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, true, err
	case 'n':
		return "", false, nil
	case 't', 'f':
		return string(raw), true, nil
	case '{', '[':
		var b bytes.Buffer
		err := json.Compact(&b, raw)
		return b.String(), true, err
	default:
		s, err := javaNumberText(string(raw))
		return s, true, err
	}
}

func decodeBinaryHeader(b []byte) (*Command, error) {
	r := reader{b: b}
	cmd := &Command{ExtFields: map[string]string{}}
	cmd.Code = int16(r.u16())
	cmd.Language = languageName(r.u8())
	cmd.Version = int16(r.u16())
	cmd.Opaque = int32(r.u32())
	cmd.Flag = int32(r.u32())
	cmd.Remark = string(r.bytes(int(int32(r.u32()))))
	ext := r.bytes(int(int32(r.u32())))
	if r.err != nil {
		return nil, r.err
	}
	er := reader{b: ext}
	for len(er.b) > 0 && er.err == nil {
		k := er.bytes(int(er.u16()))
		v := er.bytes(int(int32(er.u32())))
		if er.err == nil {
			cmd.ExtFields[string(k)] = string(v)
		}
	}
	if er.err != nil {
		return nil, er.err
	}
	return cmd, nil
}

// languageNames are the LanguageCode ordinals of the Java enum.
var languageNames = []string{"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS"}

func languageName(code byte) string {
	if int(code) < len(languageNames) {
		return languageNames[code]
	}
	return "OTHER"
}

// languageCode is the inverse of languageName; the broker itself is JAVA.
func languageCode(name string) byte {
	for i, n := range languageNames {
		if n == name {
			return byte(i)
		}
	}
	return 0
}

// reader consumes big-endian fields and remembers the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: field of %d bytes, %d left", errFrame, n, len(r.b))
		return false
	}
	return true
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// appendHeader appends the command's header in ser.
func appendHeader(b []byte, c *Command, ser Serialization) []byte {
	if ser != Binary {
		return appendJSONHeader(b, c)
	}
	extLen := 0
	for k, v := range c.ExtFields {
		extLen += 6 + len(k) + len(v)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(c.Code))
	b = append(b, languageCode(c.Language))
	b = binary.BigEndian.AppendUint16(b, uint16(c.Version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Opaque))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Flag))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Remark)))
	b = append(b, c.Remark...)
	b = binary.BigEndian.AppendUint32(b, uint32(extLen))
	for k, v := range c.ExtFields {
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// appendFrameHead appends a frame's length prefix, header mark and header,
// for a body of bodyLen bytes written after it.
func appendFrameHead(dst []byte, c *Command, bodyLen int) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = appendHeader(dst, c, c.Serialization)
	headerLen := len(dst) - start - 8
	binary.BigEndian.PutUint32(dst[start:], uint32(4+headerLen+bodyLen))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(c.Serialization)<<24|uint32(headerLen))
	return dst
}

// ReadFrame reads one complete frame, length prefix included, as EncodeFrame
// writes it, and decodes it. A length outside what the broker accepts is an
// error without reading further. Tests and tools use it to speak to the
// broker directly.
func ReadFrame(r io.Reader) (*Command, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	n, err := frameLength(prefix)
	if err != nil {
		return nil, err
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return DecodeFrame(data)
}

// EncodeFrame encodes a command as a complete frame, length prefix included.
// Tests and tools use it to speak to the broker directly.
func EncodeFrame(c *Command) []byte {
	b := appendFrameHead(make([]byte, 0, 256+len(c.Body)), c, len(c.Body))
	return append(b, c.Body...)
}

package rocketmqtest

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A hand-written parser and encoder for the JSON remoting header, because
// encoding/json costs more than everything else a send or pull does. The
// parser handles the shape clients write — the known keys with integer and
// string values and an object of scalar values — and reports false for
// anything else, which then goes through encoding/json; FuzzJSONHeader checks
// that both agree whenever the fast path accepts.

// parseJSONHeader is the fast path of decodeJSONHeader.
func parseJSONHeader(b []byte) (*Command, bool) {
	p := jsonParser{b: b}
	cmd := &Command{}
	seenExt := false
	p.ws()
	if !p.byte('{') {
		return nil, false
	}
	p.ws()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			key, ok := p.str()
			if !ok {
				return nil, false
			}
			p.ws()
			if !p.byte(':') {
				return nil, false
			}
			p.ws()
			switch key {
			case "code":
				v, ok := p.int(16)
				if !ok {
					return nil, false
				}
				cmd.Code = int16(v)
			case "version":
				v, ok := p.int(16)
				if !ok {
					return nil, false
				}
				cmd.Version = int16(v)
			case "opaque":
				v, ok := p.int(32)
				if !ok {
					return nil, false
				}
				cmd.Opaque = int32(v)
			case "flag":
				v, ok := p.int(32)
				if !ok {
					return nil, false
				}
				cmd.Flag = int32(v)
			case "language":
				v, ok := p.str()
				if !ok {
					return nil, false
				}
				cmd.Language = v
			case "remark":
				v, ok := p.str()
				if !ok {
					return nil, false
				}
				cmd.Remark = v
			case "serializeTypeCurrentRPC":
				if _, ok := p.str(); !ok {
					return nil, false
				}
			case "extFields":
				if seenExt {
					return nil, false // encoding/json merges repeated objects
				}
				seenExt = true
				ext, ok := p.object()
				if !ok {
					return nil, false
				}
				cmd.ExtFields = ext
			default:
				return nil, false
			}
			p.ws()
			if p.byte(',') {
				p.ws()
				continue
			}
			if p.byte('}') {
				break
			}
			return nil, false
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, false
	}
	if cmd.ExtFields == nil {
		cmd.ExtFields = map[string]string{}
	}
	return cmd, true
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jsonParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// int parses an integer literal that fits the bit size.
func (p *jsonParser) int(bits int) (int64, bool) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || (n > 1 && p.b[digits] == '0') {
		return 0, false
	}
	switch p.peek() {
	case '.', 'e', 'E':
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, bits)
	return v, err == nil
}

// str parses a string; it gives up on what encoding/json would alter
// (invalid UTF-8, surrogate escapes).
func (p *jsonParser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	// Fast scan: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

func (p *jsonParser) escaped(start int) (string, bool) {
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if p.i+4 > len(p.b) {
				return "", false
			}
			v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
			if err != nil || (v >= 0xD800 && v < 0xE000) {
				return "", false
			}
			p.i += 4
			buf = utf8.AppendRune(buf, rune(v))
		default:
			return "", false
		}
	}
	return "", false
}

// object parses extFields whose values are strings, numbers, booleans or
// null, converted as extText does; an object or array value is left to
// encoding/json.
func (p *jsonParser) object() (map[string]string, bool) {
	if !p.byte('{') {
		return nil, false
	}
	m := make(map[string]string, 16)
	p.ws()
	if p.byte('}') {
		return m, true
	}
	for {
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.ws()
		if !p.byte(':') {
			return nil, false
		}
		p.ws()
		switch p.peek() {
		case '"':
			v, ok := p.str()
			if !ok {
				return nil, false
			}
			m[k] = v
		case 't', 'f':
			v, ok := p.boolean()
			if !ok {
				return nil, false
			}
			m[k] = v
		case 'n':
			if !p.literal("null") {
				return nil, false
			}
			delete(m, k) // a later null overrides an earlier value, as in a HashMap
		default:
			lit, ok := p.number()
			if !ok {
				return nil, false
			}
			v, err := javaNumberText(lit)
			if err != nil {
				return nil, false // encoding/json reports it
			}
			m[k] = v
		}
		p.ws()
		if p.byte(',') {
			p.ws()
			continue
		}
		if p.byte('}') {
			return m, true
		}
		return nil, false
	}
}

// literal consumes lit if it comes next.
func (p *jsonParser) literal(lit string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return false
	}
	p.i += len(lit)
	return true
}

// boolean parses true or false and returns its text.
func (p *jsonParser) boolean() (string, bool) {
	for _, lit := range []string{"true", "false"} {
		if p.literal(lit) {
			return lit, true
		}
	}
	return "", false
}

// number scans a JSON number and returns its text.
func (p *jsonParser) number() (string, bool) {
	start := p.i
	p.byte('-')
	if !p.byte('0') && !p.digits() {
		return "", false
	}
	if p.byte('.') && !p.digits() {
		return "", false
	}
	if p.byte('e') || p.byte('E') {
		if !p.byte('+') {
			p.byte('-')
		}
		if !p.digits() {
			return "", false
		}
	}
	return string(p.b[start:p.i]), true
}

// digits consumes a run of decimal digits and reports whether there was one.
func (p *jsonParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// javaNumberText returns the text the Java broker makes of a JSON number in
// extFields. fastjson decodes extFields as a HashMap<String, String>
// (RemotingCommand.extFields): an integer keeps its literal text
// (StringCodec takes the token's text, so 1234567890123 stays exact), a number
// with a fraction or exponent becomes a BigDecimal (fastjson's default
// UseBigDecimal) and then its toString, so 1.0 stays "1.0" but 1e3 becomes
// "1E+3" and -0.0 becomes "0.0". A scale outside the Java int range is an
// error, as BigDecimal refuses it and the broker then drops the connection.
func javaNumberText(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		return lit, nil
	}
	abs, neg := strings.CutPrefix(lit, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(abs), "e")
	whole, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		digits, neg = "0", false // BigDecimal has no negative zero
	}
	var e int64
	if exp != "" {
		var err error
		if e, err = strconv.ParseInt(exp, 10, 64); err != nil {
			return "", fmt.Errorf("number %s: exponent out of range", lit)
		}
	}
	scale := int64(len(frac)) - e
	if scale < math.MinInt32 || scale > math.MaxInt32 {
		return "", fmt.Errorf("number %s: scale out of range", lit)
	}
	// BigDecimal.toString: plain notation when the scale is not negative
	// and the adjusted exponent is at least -6, else scientific.
	adjusted := -scale + int64(len(digits)-1)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case scale == 0:
		b.WriteString(digits)
	case scale > 0 && adjusted >= -6:
		if pad := int(scale) - len(digits); pad >= 0 {
			b.WriteString("0.")
			b.WriteString(strings.Repeat("0", pad))
			b.WriteString(digits)
		} else {
			point := len(digits) - int(scale)
			b.WriteString(digits[:point])
			b.WriteByte('.')
			b.WriteString(digits[point:])
		}
	default:
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('E')
		if adjusted > 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.FormatInt(adjusted, 10))
	}
	return b.String(), nil
}

// appendJSONHeader encodes a header as the Java broker's fastjson does
// (keys in alphabetical order, empty remark omitted).
func appendJSONHeader(b []byte, c *Command) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(c.Code), 10)
	if len(c.ExtFields) > 0 {
		b = append(b, `,"extFields":{`...)
		first := true
		for k, v := range c.ExtFields {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `,"flag":`...)
	b = strconv.AppendInt(b, int64(c.Flag), 10)
	b = append(b, `,"language":`...)
	lang := c.Language
	if lang == "" {
		lang = "JAVA"
	}
	b = appendJSONString(b, lang)
	b = append(b, `,"opaque":`...)
	b = strconv.AppendInt(b, int64(c.Opaque), 10)
	if c.Remark != "" {
		b = append(b, `,"remark":`...)
		b = appendJSONString(b, c.Remark)
	}
	b = append(b, `,"serializeTypeCurrentRPC":"JSON","version":`...)
	b = strconv.AppendInt(b, int64(c.Version), 10)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as JSON, replacing invalid UTF-8 with U+FFFD as
// encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

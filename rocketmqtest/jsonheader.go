package rocketmqtest

import (
	"strconv"
	"unicode/utf8"
)

// A hand-written parser and encoder for the JSON remoting header, because
// encoding/json costs more than everything else a send or pull does. The
// parser handles the shape clients write — the known keys with integer and
// string values and an object of strings — and reports false for anything
// else, which then goes through encoding/json; FuzzDecodeFrame checks that
// both agree whenever the fast path accepts.

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

// object parses an object of string values.
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
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		m[k] = v
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

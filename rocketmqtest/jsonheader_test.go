package rocketmqtest

import (
	"errors"
	"maps"
	"testing"
)

// TestJavaNumberText checks numbers against what Java's
// new BigDecimal(text).toString() gives, and that integers keep their text.
func TestJavaNumberText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"0", "0"},
		{"-0", "-0"},
		{"1234567890123", "1234567890123"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{"1.0", "1.0"},
		{"-1.50", "-1.50"},
		{"0.05", "0.05"},
		{"-0.0", "0.0"},
		{"0.000", "0.000"},
		{"0.000001", "0.000001"},
		{"0.0000001", "1E-7"},
		{"1.5e-7", "1.5E-7"},
		{"1e3", "1E+3"},
		{"1E3", "1E+3"},
		{"1.0e3", "1.0E+3"},
		{"-2.5E+2", "-2.5E+2"},
		{"2.50e1", "25.0"},
		{"123.456e2", "12345.6"},
		{"1e0", "1"},
		{"1e-0", "1"},
		{"0e2", "0E+2"},
		{"12e-1", "1.2"},
		{"1e2147483648", "1E+2147483648"},
		{"1e-2147483647", "1E-2147483647"},
		{"1.5e0000000000000000000001", "15"},
	}
	for _, tc := range cases {
		got, err := javaNumberText(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("javaNumberText(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// BigDecimal refuses a scale outside the int range.
	for _, in := range []string{"1e-2147483648", "0.5e-2147483647", "1e99999999999999999999"} {
		if got, err := javaNumberText(in); err == nil {
			t.Errorf("javaNumberText(%s) = %q, want an error", in, got)
		}
	}
}

// TestJSONHeaderExtValues checks that both JSON header decoders read
// extFields values of every JSON type as the Java broker does.
func TestJSONHeaderExtValues(t *testing.T) {
	cases := []struct {
		name, ext string
		want      map[string]string
		fast      bool // the hand-written parser takes it
	}{
		{"strings", `{"a":"x","b":""}`, map[string]string{"a": "x", "b": ""}, true},
		{"integers", `{"queueId":3,"bornTimestamp":1234567890123,"n":-1}`,
			map[string]string{"queueId": "3", "bornTimestamp": "1234567890123", "n": "-1"}, true},
		{"decimals", `{"a":1.0,"b":1e3,"c":-0.0}`, map[string]string{"a": "1.0", "b": "1E+3", "c": "0.0"}, true},
		{"booleans", `{"batch":true,"unitMode":false}`, map[string]string{"batch": "true", "unitMode": "false"}, true},
		{"null is missing", `{"a":null,"b":"1"}`, map[string]string{"b": "1"}, true},
		{"null overrides", `{"a":"1","a":null}`, map[string]string{}, true},
		{"last wins", `{"a":null,"a":2}`, map[string]string{"a": "2"}, true},
		{"whitespace", "{ \"a\" : 1 ,\n\"b\" :\ttrue }", map[string]string{"a": "1", "b": "true"}, true},
		{"object", `{"a":{"x": [1, "y"]}}`, map[string]string{"a": `{"x":[1,"y"]}`}, false},
		{"array", `{"a":[]}`, map[string]string{"a": `[]`}, false},
		{"extFields null", `null`, map[string]string{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := []byte(`{"code":10,"opaque":5,"extFields":` + tc.ext + `}`)
			fast, ok := parseJSONHeader(header)
			if ok != tc.fast {
				t.Errorf("fast path took it: %v, want %v", ok, tc.fast)
			}
			if ok && !maps.Equal(fast.ExtFields, tc.want) {
				t.Errorf("fast path: %q, want %q", fast.ExtFields, tc.want)
			}
			slow, err := decodeJSONHeaderSlow(header)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(slow.ExtFields, tc.want) || slow.Code != 10 || slow.Opaque != 5 {
				t.Errorf("encoding/json: %+v, want extFields %q", slow, tc.want)
			}
		})
	}
	// Numbers fastjson cannot read close the connection, as on the Java
	// broker (NettyDecoder closes the channel on a decode exception).
	for _, ext := range []string{`{"a":1e-2147483648}`, `{"a":01}`, `{"a":tru}`, `{"a":"x"`} {
		if cmd, err := decodeJSONHeader([]byte(`{"code":10,"extFields":` + ext + `}`)); !errors.Is(err, errFrame) {
			t.Errorf("extFields %s: %+v, %v; want errFrame", ext, cmd, err)
		}
	}
}

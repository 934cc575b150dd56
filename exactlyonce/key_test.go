package exactlyonce

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

func TestDefaultKey(t *testing.T) {
	ext := func(props map[string]string, msgID, offsetID string) *primitive.MessageExt {
		m := &primitive.MessageExt{MsgId: msgID, OffsetMsgId: offsetID}
		for k, v := range props {
			m.WithProperty(k, v)
		}
		return m
	}
	for _, c := range []struct {
		name string
		msg  *primitive.MessageExt
		want string
	}{
		{"extend uniq info first", ext(map[string]string{PropertyExtendUniqInfo: "E", "UNIQ_KEY": "U", "ORIGIN_MESSAGE_ID": "O"}, "U", "X"), "E"},
		{"uniq key", ext(map[string]string{"UNIQ_KEY": "U", "ORIGIN_MESSAGE_ID": "O"}, "U", "X"), "U"},
		{"retry copy of a batch message: origin id", ext(map[string]string{"ORIGIN_MESSAGE_ID": "O"}, "X2", "X2"), "O"},
		{"msg id", ext(nil, "M", "X"), "M"},
		{"offset id", ext(nil, "", "X"), "X"},
	} {
		got, err := DefaultKey(c.msg)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := DefaultKey(&primitive.MessageExt{}); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty message: %v", err)
	}
	if _, err := DefaultKey(nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil message: %v", err)
	}
}

func TestKeysKey(t *testing.T) {
	m := &primitive.MessageExt{MsgId: "M"}
	if _, err := KeysKey(m); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no keys: %v", err)
	}
	m.WithKeys([]string{"order-1", "sku-2"})
	if got, err := KeysKey(m); err != nil || got != "order-1 sku-2" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestStampKey(t *testing.T) {
	a, b := primitive.NewMessage("t", []byte("a")), primitive.NewMessage("t", []byte("b"))
	StampKey(a, b, nil)
	ua, ea := a.GetProperty("UNIQ_KEY"), a.GetProperty(PropertyExtendUniqInfo)
	// The Java producer's format: UNIQ_KEY and 4 bytes in upper-case hex,
	// 40 characters with the client's 32-character UNIQ_KEY.
	if len(ua) != 32 || !strings.HasPrefix(ea, ua) || len(ea) != 40 || strings.ToUpper(ea[32:]) != ea[32:] {
		t.Fatalf("uniq %q extend %q", ua, ea)
	}
	if ea == b.GetProperty(PropertyExtendUniqInfo) || ua == b.GetProperty("UNIQ_KEY") {
		t.Fatal("two messages share a key")
	}
	StampKey(a) // resend: unchanged
	if a.GetProperty("UNIQ_KEY") != ua || a.GetProperty(PropertyExtendUniqInfo) != ea {
		t.Fatal("restamping changed the key")
	}
	// A producer-set UNIQ_KEY is kept.
	c := primitive.NewMessage("t", nil)
	c.WithProperty("UNIQ_KEY", "FROMPRODUCER")
	StampKey(c)
	if c.GetProperty("UNIQ_KEY") != "FROMPRODUCER" || !strings.HasPrefix(c.GetProperty(PropertyExtendUniqInfo), "FROMPRODUCER") {
		t.Fatal(c.GetProperties())
	}
	// The consumer side derives the stamped key.
	ext := &primitive.MessageExt{}
	ext.WithProperties(a.GetProperties())
	if k, _ := DefaultKey(ext); k != ea {
		t.Fatalf("DefaultKey %q, want %q", k, ea)
	}
}

func TestSetBusinessKey(t *testing.T) {
	m := primitive.NewMessage("t", nil)
	if err := SetBusinessKey(m, "price:SKU-1:v3"); err != nil {
		t.Fatal(err)
	}
	if m.GetProperty(PropertyExtendUniqInfo) != "price:SKU-1:v3" {
		t.Fatal(m.GetProperties())
	}
	for _, bad := range []string{"", "a\x01b", "a\x02b", "\xff", strings.Repeat("k", 300)} {
		if err := SetBusinessKey(m, bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := SetBusinessKey(nil, "k"); !errors.Is(err, ErrBadKey) {
		t.Error(err)
	}
}

func TestIDCache(t *testing.T) {
	c := newIDCache(2)
	c.add("a")
	c.add("b")
	c.contains("a") // a is now most recent
	c.add("c")      // evicts b
	if !c.contains("a") || c.contains("b") || !c.contains("c") {
		t.Fatal("LRU order wrong")
	}
	var off *idCache = newIDCache(0)
	off.add("a")
	if off.contains("a") {
		t.Fatal("disabled cache remembers")
	}
}

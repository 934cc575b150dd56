package exactlyoncev5

import (
	"errors"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/b74fc070/rocketmq-exactlyonce/exactlyonce"
)

// TestKeysMatchV2 derives the key of the same stored message as the proxy
// shows it to a v5 consumer and as a v2 consumer sees it: they must be
// equal, so a group can move between the clients on one table.
func TestKeysMatchV2(t *testing.T) {
	const uniq = "C0A80001000B18B4AAC2667D6E4A0000"
	const offsetID = "7F000001000078BF000000000000023A"
	tests := []struct {
		name string
		v5   func(t *testing.T) (string, error)
		v2   *primitive.MessageExt
	}{
		{
			name: "UNIQ_KEY is the v5 message id",
			v5: func(t *testing.T) (string, error) {
				return DefaultKey(view(t, uniq, "T", map[string]string{"a": "b"}, nil, "", 1))
			},
			v2: extWith(map[string]string{primitive.PropertyUniqueClientMessageIdKeyIndex: uniq}, uniq, offsetID),
		},
		{
			name: "no UNIQ_KEY (a v2 batch): the offset id on both",
			v5: func(t *testing.T) (string, error) {
				return DefaultKey(view(t, offsetID, "T", nil, nil, "", 1))
			},
			v2: extWith(nil, offsetID, offsetID),
		},
		{
			name: "keys, joined by spaces",
			v5: func(t *testing.T) (string, error) {
				return KeysKey(view(t, uniq, "T", nil, []string{"order-42", "paid"}, "", 1))
			},
			v2: extWith(map[string]string{primitive.PropertyKeys: "order-42 paid"}, uniq, offsetID),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v5(t)
			if err != nil {
				t.Fatal(err)
			}
			kf := exactlyonce.DefaultKey
			if tt.name == "keys, joined by spaces" {
				kf = exactlyonce.KeysKey
			}
			want, err := kf(tt.v2)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("v5 key %q, v2 key %q", got, want)
			}
		})
	}
}

func extWith(props map[string]string, msgID, offsetID string) *primitive.MessageExt {
	m := &primitive.MessageExt{MsgId: msgID, OffsetMsgId: offsetID}
	m.Topic = "T"
	for k, v := range props {
		m.WithProperty(k, v)
	}
	return m
}

func TestDefaultKey(t *testing.T) {
	k, err := DefaultKey(view(t, "ID", "T", map[string]string{exactlyonce.PropertyExtendUniqInfo: "EXT"}, nil, "", 1))
	if err != nil || k != "EXT" {
		t.Fatalf("EXTEND_UNIQ_INFO from a proxy that passes it: %q, %v", k, err)
	}
	if _, err := DefaultKey(view(t, "", "T", nil, nil, "", 1)); !errors.Is(err, exactlyonce.ErrNoKey) {
		t.Fatalf("no id: %v, want ErrNoKey", err)
	}
	if _, err := DefaultKey(nil); !errors.Is(err, exactlyonce.ErrNoKey) {
		t.Fatalf("nil: %v", err)
	}
	if _, err := KeysKey(view(t, "ID", "T", nil, []string{" "}, "", 1)); !errors.Is(err, exactlyonce.ErrNoKey) {
		t.Fatalf("blank keys: %v, want ErrNoKey", err)
	}
}

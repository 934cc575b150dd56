package rocketmqtest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// The message store: topics with queues of messages, each message encoded once
// at store time in the commit-log layout of the Java broker
// (CommitLog.DefaultAppendMessageCallback, message format v1), which is what a
// pull response carries and primitive.DecodeMessage parses:
//
//	int32 totalSize | int32 magic | int32 bodyCRC | int32 queueId | int32 flag |
//	int64 queueOffset | int64 commitLogOffset | int32 sysFlag |
//	int64 bornTimestamp | bornHost (4 or 16 bytes + int32 port) |
//	int64 storeTimestamp | storeHost (4 or 16 bytes + int32 port) |
//	int32 reconsumeTimes | int64 preparedTransactionOffset |
//	int32 bodyLen | body | int8 topicLen | topic | int16 propsLen | props
//
// Commit-log offsets advance by each message's total size, as in a real
// commit log, so OffsetMsgId values look like the real ones. Nothing is ever
// deleted: every queue's min offset is 0.

const (
	// messageMagic is MessageDecoder.MESSAGE_MAGIC_CODE (v1 format).
	messageMagic = 0xdaa320a7
	// Message sysFlag bits (MessageSysFlag).
	sysFlagCompressed      = 0x1
	sysFlagTransactionMask = 0x3 << 2
	sysFlagTransactionPrep = 0x1 << 2
	sysFlagTransactionRoll = 0x3 << 2
	sysFlagBornHostV6      = 0x1 << 4
	sysFlagStoreHostV6     = 0x1 << 5
	// Topic permissions (PermName).
	permInherit = 1 << 0
	permWrite   = 1 << 1
	permRead    = 1 << 2
	// maxMessageSize is the broker's default maxMessageSize (4 MiB).
	maxMessageSize = 4 << 20
)

// Property names the broker reads or writes (MessageConst).
const (
	propKeys            = "KEYS"
	propTags            = "TAGS"
	propWait            = "WAIT"
	propDelay           = "DELAY"
	propRetryTopic      = "RETRY_TOPIC"
	propRealTopic       = "REAL_TOPIC"
	propRealQueueID     = "REAL_QID"
	propTransPrepared   = "TRAN_MSG"
	propOriginMessageID = "ORIGIN_MESSAGE_ID"
	propUniqKey         = "UNIQ_KEY"
	propCluster         = "CLUSTER"
	propMaxReconsume    = "MAX_RECONSUME_TIMES"
)

// System topics and prefixes (MixAll, TopicValidator).
const (
	defaultTopic     = "TBW102"
	scheduleTopic    = "SCHEDULE_TOPIC_XXXX"
	retryTopicPrefix = "%RETRY%"
	dlqTopicPrefix   = "%DLQ%"
	clusterName      = "DefaultCluster"
)

type topic struct {
	name        string
	readQueues  int
	writeQueues int
	perm        int
	queues      []*queue // max(readQueues, writeQueues)
}

type queue struct {
	msgs []*message // index is the queue offset
}

func (t *topic) ensureQueues() {
	n := max(t.readQueues, t.writeQueues)
	for len(t.queues) < n {
		t.queues = append(t.queues, &queue{})
	}
}

// message is one stored message. Fields other than enc are kept decoded for
// send-back, scheduling and introspection.
type message struct {
	topic           string
	queueID         int32
	flag            int32
	sysFlag         int32
	body            []byte
	props           string // encoded: key \x01 value \x02 ...
	bornTimestamp   int64
	bornHost        hostPort
	storeTimestamp  int64
	storeHost       hostPort
	reconsumeTimes  int32
	queueOffset     int64
	commitLogOffset int64
	tagsCode        int64
	hasTags         bool

	enc []byte // commit-log encoding, immutable once stored
}

type hostPort struct {
	ip   net.IP // 4 or 16 bytes
	port int32
}

func hostPortOf(a net.Addr) hostPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip := ta.IP.To4()
		if ip == nil {
			ip = ta.IP.To16()
		}
		return hostPort{ip: ip, port: int32(ta.Port)}
	}
	return hostPort{ip: net.IPv4(127, 0, 0, 1).To4()}
}

func (h hostPort) v6() bool { return len(h.ip) == 16 }

// encode builds the commit-log encoding; queueOffset and commitLogOffset must
// be set.
func (m *message) encode() {
	if m.bornHost.v6() {
		m.sysFlag |= sysFlagBornHostV6
	}
	if m.storeHost.v6() {
		m.sysFlag |= sysFlagStoreHostV6
	}
	size := 91 - 8 + len(m.bornHost.ip) + len(m.storeHost.ip) + len(m.body) + len(m.topic) + len(m.props)
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = binary.BigEndian.AppendUint32(b, messageMagic)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(m.body)&0x7fffffff) // UtilAll.crc32: a non-negative int
	b = binary.BigEndian.AppendUint32(b, uint32(m.queueID))
	b = binary.BigEndian.AppendUint32(b, uint32(m.flag))
	b = binary.BigEndian.AppendUint64(b, uint64(m.queueOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(m.commitLogOffset))
	b = binary.BigEndian.AppendUint32(b, uint32(m.sysFlag))
	b = binary.BigEndian.AppendUint64(b, uint64(m.bornTimestamp))
	b = append(b, m.bornHost.ip...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.bornHost.port))
	b = binary.BigEndian.AppendUint64(b, uint64(m.storeTimestamp))
	b = append(b, m.storeHost.ip...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.storeHost.port))
	b = binary.BigEndian.AppendUint32(b, uint32(m.reconsumeTimes))
	b = binary.BigEndian.AppendUint64(b, 0) // prepared transaction offset
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.body)))
	b = append(b, m.body...)
	b = append(b, byte(len(m.topic)))
	b = append(b, m.topic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.props)))
	b = append(b, m.props...)
	m.enc = b
}

// check enforces the limits of the commit-log layout: a topic name of at most
// 127 bytes (Java's TopicValidator; the field is one byte) and properties of
// at most 32767 bytes (an int16 the client reads signed). The delay level
// properties the broker adds leave room within that.
func (m *message) check() error {
	if len(m.topic) > 127 {
		return fmt.Errorf("the topic %.20q... is longer than 127 bytes", m.topic)
	}
	if len(m.props) > 32000 {
		return fmt.Errorf("the message properties are longer than 32000 bytes")
	}
	return nil
}

// offsetMsgID is the id MessageDecoder.createMessageId builds: store host,
// port and commit-log offset, upper-case hex.
func (m *message) offsetMsgID() string {
	b := make([]byte, 0, 28)
	b = append(b, m.storeHost.ip...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.storeHost.port))
	b = binary.BigEndian.AppendUint64(b, uint64(m.commitLogOffset))
	return strings.ToUpper(hex.EncodeToString(b))
}

// parseProperties splits an encoded property string (MessageDecoder.string2messageProperties).
func parseProperties(s string) map[string]string {
	m := make(map[string]string)
	for item := range strings.SplitSeq(s, "\x02") {
		k, v, ok := strings.Cut(item, "\x01")
		if ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// property finds one property without building the map.
func property(s, key string) (string, bool) {
	for item := range strings.SplitSeq(s, "\x02") {
		k, v, ok := strings.Cut(item, "\x01")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}

// formatProperties encodes properties, sorted so stored bytes are deterministic.
func formatProperties(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(k)
		sb.WriteByte(1)
		sb.WriteString(m[k])
		sb.WriteByte(2)
	}
	return sb.String()
}

// setTags computes the consume-queue tags code: Java's String.hashCode of the
// TAGS property, 0 without tags.
func (m *message) setTags() {
	tags, ok := property(m.props, propTags)
	m.hasTags = ok && tags != ""
	m.tagsCode = 0
	if m.hasTags {
		m.tagsCode = int64(javaHash(tags))
	}
}

// javaHash is java.lang.String.hashCode.
func javaHash(s string) int32 {
	var h int32
	for _, c := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(c)
	}
	return h
}

// delayLevel returns the DELAY property as a level, 0 without one.
func (m *message) delayLevel() int {
	v, ok := property(m.props, propDelay)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// subscription is a parsed TAG subscription expression (FilterAPI.buildSubscriptionData).
type subscription struct {
	expr  string
	all   bool
	codes map[int64]bool
}

func parseSubscription(expr string) *subscription {
	s := &subscription{expr: expr}
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		s.all = true
		return s
	}
	s.codes = make(map[int64]bool)
	for tag := range strings.SplitSeq(expr, "||") {
		if tag = strings.TrimSpace(tag); tag != "" {
			s.codes[int64(javaHash(tag))] = true
		}
	}
	return s
}

// matches is ExpressionMessageFilter.isMatchedByConsumeQueue for TAG filters.
func (s *subscription) matches(m *message) bool {
	if s == nil || s.all {
		return true
	}
	return s.codes[m.tagsCode]
}

package rocketmqtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Persistence for WithDataDir: an append-only log of what the broker must not
// forget when its process dies — topics, stored messages (their commit-log
// encoding), committed offsets, delivered delayed messages, consumer
// groups' subscriptions and the subscription-group table. Each record is
// written with one write call as it happens, so it survives a killed process
// (not a machine crash: there is no fsync). On start the log is replayed; a
// record cut short by a kill is ignored.
//
//	record  = uint32 length | byte kind | payload   (length counts kind+payload)
//	'T'     = uint16 len | name | uint32 read | uint32 write | uint32 perm
//	'M'     = the message's commit-log encoding
//	'O'     = uint16 len | group | uint16 len | topic | int32 queue | int64 offset
//	'S'     = int64 commit-log offset of a delivered SCHEDULE_TOPIC_XXXX message
//	'G'     = uint16 len | group | uint16 len | topic | byte removed |
//	          int64 subVersion | uint16 len | expressionType | uint16 len | expression
//	'K'     = uint16 len | group, a group added to the subscription-group table
//	          (replay also adds the groups of 'O' and 'G' records: a log written
//	          before 'K' records has only those)

const dataFile = "rocketmqtest.log"

// openLog replays the log in dir into s, then opens it for appending.
func (s *state) openLog(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, dataFile)
	if err := s.replay(path); err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.log = f
	return nil
}

func (s *state) replay(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	delivered := map[int64]bool{}
	var valid int64
	for {
		var prefix [4]byte
		if _, err := io.ReadFull(r, prefix[:]); err != nil {
			break
		}
		n := binary.BigEndian.Uint32(prefix[:])
		if n == 0 || n > maxFrameLength {
			break
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(r, rec); err != nil {
			break // cut short by a kill
		}
		if err := s.replayRecord(rec, delivered); err != nil {
			return err
		}
		valid += 4 + int64(n)
	}
	// Drop a torn tail so new records follow the last whole one.
	if err := os.Truncate(path, valid); err != nil {
		return err
	}
	// Delayed messages not yet delivered are scheduled again, on their
	// original timetable.
	if t := s.topics[scheduleTopic]; t != nil {
		for lvl, q := range t.queues {
			for _, m := range q.msgs {
				if delivered[m.commitLogOffset] || lvl >= len(s.cfg.delayLevels) {
					continue
				}
				due := time.UnixMilli(m.storeTimestamp).Add(s.delay(lvl + 1))
				s.after(time.Until(due), func() { s.deliverScheduled(m) })
			}
		}
	}
	return nil
}

func (s *state) replayRecord(rec []byte, delivered map[int64]bool) error {
	r := reader{b: rec[1:]}
	switch rec[0] {
	case 'T':
		name := string(r.bytes(int(r.u16())))
		read, write, perm := r.u32(), r.u32(), r.u32()
		if r.err != nil {
			return r.err
		}
		s.createTopic(name, int(read), int(write), int(perm))
	case 'M':
		m, err := decodeStored(rec[1:])
		if err != nil {
			return err
		}
		t := s.topics[m.topic]
		if t == nil {
			t = s.createTopic(m.topic, int(m.queueID)+1, int(m.queueID)+1, permRead|permWrite)
		}
		for int(m.queueID) >= len(t.queues) {
			t.queues = append(t.queues, &queue{})
		}
		q := t.queues[m.queueID]
		if m.queueOffset != int64(len(q.msgs)) {
			return fmt.Errorf("message at %s/%d offset %d, want %d", m.topic, m.queueID, m.queueOffset, len(q.msgs))
		}
		q.msgs = append(q.msgs, m)
		s.commitLog[m.commitLogOffset] = m
		s.nextCommitLog = max(s.nextCommitLog, m.commitLogOffset+int64(len(m.enc)))
	case 'O':
		group := string(r.bytes(int(r.u16())))
		topic := string(r.bytes(int(r.u16())))
		q := int32(r.u32())
		off := int64(r.u64())
		if r.err != nil {
			return r.err
		}
		s.offsets[offsetKey{group, topic, q}] = off
		// A group with a committed offset or a subscription was met (logs
		// written before 'K' records existed have only these).
		s.knowGroup(group)
	case 'S':
		delivered[int64(r.u64())] = true
	case 'G':
		group := string(r.bytes(int(r.u16())))
		sd := &subscriptionData{topic: string(r.bytes(int(r.u16())))}
		sd.removed = r.u8() == 1
		sd.version = int64(r.u64())
		sd.expressionType = string(r.bytes(int(r.u16())))
		sd.sub = parseSubscription(string(r.bytes(int(r.u16()))))
		if r.err != nil {
			return r.err
		}
		s.setSubscription(s.group(group), sd)
		s.knowGroup(group)
	case 'K':
		group := string(r.bytes(int(r.u16())))
		if r.err != nil {
			return r.err
		}
		s.knownGroups[group] = true
	default:
		return fmt.Errorf("unknown record kind %q", rec[0])
	}
	return nil
}

// decodeStored parses a commit-log encoding back into a message.
func decodeStored(enc []byte) (*message, error) {
	r := reader{b: enc}
	m := &message{enc: enc}
	r.u32() // total size
	r.u32() // magic
	r.u32() // body CRC
	m.queueID = int32(r.u32())
	m.flag = int32(r.u32())
	m.queueOffset = int64(r.u64())
	m.commitLogOffset = int64(r.u64())
	m.sysFlag = int32(r.u32())
	m.bornTimestamp = int64(r.u64())
	m.bornHost = r.host(m.sysFlag&sysFlagBornHostV6 != 0)
	m.storeTimestamp = int64(r.u64())
	m.storeHost = r.host(m.sysFlag&sysFlagStoreHostV6 != 0)
	m.reconsumeTimes = int32(r.u32())
	r.u64() // prepared transaction offset
	m.body = r.bytes(int(int32(r.u32())))
	m.topic = string(r.bytes(int(r.u8())))
	m.props = string(r.bytes(int(r.u16())))
	if r.err != nil {
		return nil, r.err
	}
	m.setTags()
	return m, nil
}

func (r *reader) host(v6 bool) hostPort {
	n := 4
	if v6 {
		n = 16
	}
	ip := r.bytes(n)
	return hostPort{ip: append([]byte(nil), ip...), port: int32(r.u32())}
}

// record appends one record to the log, if there is one.
func (s *state) record(kind byte, payload []byte) {
	if s.log == nil || s.replaying {
		return
	}
	b := make([]byte, 0, 5+len(payload))
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(payload)))
	b = append(b, kind)
	b = append(b, payload...)
	if _, err := s.log.Write(b); err != nil {
		s.cfg.logger.Error("rocketmqtest: writing the data log", "err", err)
	}
}

func (s *state) recordTopic(t *topic) {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(t.name)))
	b = append(b, t.name...)
	b = binary.BigEndian.AppendUint32(b, uint32(t.readQueues))
	b = binary.BigEndian.AppendUint32(b, uint32(t.writeQueues))
	b = binary.BigEndian.AppendUint32(b, uint32(t.perm))
	s.record('T', b)
}

func (s *state) recordOffset(k offsetKey, off int64) {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(k.group)))
	b = append(b, k.group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.topic)))
	b = append(b, k.topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(k.queueID))
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	s.record('O', b)
}

func (s *state) recordKnownGroup(group string) {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(group)))
	s.record('K', append(b, group...))
}

func (s *state) recordSubscription(group string, sd *subscriptionData) {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(group)))
	b = append(b, group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sd.topic)))
	b = append(b, sd.topic...)
	removed := byte(0)
	expr := ""
	if sd.removed {
		removed = 1
	} else {
		expr = sd.sub.expr
	}
	b = append(b, removed)
	b = binary.BigEndian.AppendUint64(b, uint64(sd.version))
	b = binary.BigEndian.AppendUint16(b, uint16(len(sd.expressionType)))
	b = append(b, sd.expressionType...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(expr)))
	b = append(b, expr...)
	s.record('G', b)
}

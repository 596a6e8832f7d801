//go:build !windows

package loop

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/wsgate/wsgate/codec"
)

// sqModel drives a sendQueue and checks its invariants after every step
// (see sendQueue): the model knows every message pushed, in order, and
// what take handed out (the wire).
type sqModel struct {
	t     testing.TB
	q     sendQueue
	ix    keyIndex
	next  uint32   // id of the next message
	order []uint32 // ids pushed, in order
	write map[uint32]bool
	keyOf map[uint32]int  // published message's key (or -1)
	last  map[int]uint32  // latest id published with each key
	gone  map[uint32]bool // published messages removed (dropped or replaced)
	// the wire: ids of the whole messages taken, and the message taken in
	// part (its payload so far)
	sent    []uint32
	partial []byte
	inMsg   bool
}

func newSQModel(t testing.TB) *sqModel {
	return &sqModel{t: t, write: map[uint32]bool{}, keyOf: map[uint32]int{}, last: map[int]uint32{}, gone: map[uint32]bool{}}
}

// message returns a message with id, size bytes of payload (at least 4),
// in frames of frag bytes.
func (m *sqModel) message(id uint32, size, frag int) []byte {
	p := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(p, id)
	return appendMessage(nil, codec.OpBinary, 0, p, frag)
}

func (m *sqModel) writeMsg(size, frag int) {
	id := m.next
	m.next++
	m.q.push(m.message(id, size, frag), false)
	m.order = append(m.order, id)
	m.write[id] = true
}

// publish pushes a published message; with a key (>= 0) it replaces the
// key's queued message, if still wholly queued, as deliver does: in its
// place if inPlace, else removing it and pushing the new one at the end.
func (m *sqModel) publish(size, frag, key int, inPlace bool) {
	id := m.next
	m.next++
	msg := m.message(id, size, frag)
	if key >= 0 && m.q.data != nil {
		if at, ok := m.ix.pos(fmt.Sprint(key)); ok {
			queued := at >= int(m.q.head) && at < len(m.q.data.B)
			if queued && inPlace {
				m.q.replace(at, msg, &m.ix)
				old := m.last[key]
				m.gone[old] = true
				m.order[slices.Index(m.order, old)] = id
				m.keyOf[id], m.last[key] = key, id
				return
			}
			delete(m.ix.keys, fmt.Sprint(key))
			if queued {
				m.q.unqueue(at, &m.ix)
				m.gone[m.last[key]] = true
			}
		}
	}
	at := m.q.push(msg, true)
	m.order = append(m.order, id)
	m.keyOf[id] = key
	if key >= 0 {
		m.ix.set(fmt.Sprint(key), at)
		m.last[key] = id
	}
}

// dropOldest checks what dropOldest says against what left the queue: the
// count and bytes it reports, oldest first, and that it stops only when
// need is met or no droppable message is left (the one gnet has started
// stays).
func (m *sqModel) dropOldest(need int) {
	before, bytesBefore := m.queuedIDs(), m.q.queued()
	dropped, freed := m.q.dropOldest(need, m.inMsg, &m.ix)
	after := m.queuedIDs()
	in := map[uint32]bool{}
	for _, id := range after {
		in[id] = true
	}
	// Age is the place in push order (a message replaced in place keeps
	// its predecessor's).
	place := map[uint32]int{}
	for i, id := range m.order {
		place[id] = i
	}
	n, newestGone := 0, -1
	for _, id := range before {
		if !in[id] {
			n++
			m.gone[id] = true
			newestGone = max(newestGone, place[id])
		}
	}
	if n != dropped || freed != bytesBefore-m.q.queued() {
		m.t.Fatalf("dropOldest(%d) = %d, %d; %d messages and %d bytes left the queue",
			need, dropped, freed, n, bytesBefore-m.q.queued())
	}
	for i, id := range after {
		if m.write[id] || i == 0 && m.inMsg {
			continue // not droppable, or started on the wire
		}
		if n > 0 && place[id] < newestGone {
			m.t.Fatalf("dropOldest dropped message %d but kept the older %d", m.order[newestGone], id)
		}
		if freed < need {
			m.t.Fatalf("dropOldest(%d) freed %d and kept droppable message %d", need, freed, id)
		}
		break
	}
}

func (m *sqModel) take(data bool, limit int) {
	ctrl, chunk, done, mid, _ := m.q.take(data, limit, &m.ix)
	if m.q.ctrl != nil {
		m.t.Fatal("take left control frames behind")
	}
	if ctrl != nil {
		m.wire(ctrl.B, true)
		ctrlPool.Put(ctrl)
	}
	m.wire(chunk, false)
	if chunk != nil && mid != m.inMsg {
		m.t.Fatalf("take: mid %v, the wire's last message ends: %v", mid, !m.inMsg)
	}
	if done != nil {
		outPool.Put(done)
	}
}

// wire takes bytes handed to gnet: whole frames, no queue mark.
func (m *sqModel) wire(b []byte, control bool) {
	for len(b) > 0 {
		h, n, err := codec.ParseHeader(b)
		if err != nil || n == 0 || int64(len(b)-n) < h.Length {
			m.t.Fatalf("wire: not a whole frame: %v", err)
		}
		if h.Rsv != 0 {
			m.t.Fatalf("wire: frame with RSV %#x (a queue mark went out)", h.Rsv)
		}
		p := b[n : n+int(h.Length)]
		b = b[n+int(h.Length):]
		if h.OpCode.IsControl() != control {
			m.t.Fatalf("wire: control frame %v among data, or data among control", h.OpCode)
		}
		if control {
			continue
		}
		if (h.OpCode == codec.OpContinuation) != m.inMsg {
			m.t.Fatalf("wire: %v frame, in a message: %v (a control frame or another message inside one)", h.OpCode, m.inMsg)
		}
		m.partial = append(m.partial, p...)
		m.inMsg = !h.Fin
		if h.Fin {
			m.sent = append(m.sent, binary.BigEndian.Uint32(m.partial))
			m.partial = m.partial[:0]
		}
	}
}

// queuedIDs parses data[head:] (checking that it is whole frames) and
// returns the ids of the messages that start in it.
func (m *sqModel) queuedIDs() []uint32 {
	if m.q.data == nil {
		if m.q.head != 0 || m.inMsg {
			m.t.Fatalf("empty queue with head %d, mid-message %v", m.q.head, m.inMsg)
		}
		return nil
	}
	b := m.q.data.B[m.q.head:]
	var ids []uint32
	in := m.inMsg
	var cur []byte
	for off := 0; off < len(b); {
		h, n, err := codec.ParseHeader(b[off:])
		if err != nil || n == 0 || int64(len(b)-off-n) < h.Length {
			m.t.Fatalf("queue: not whole frames at %d: %v", off, err)
		}
		if (h.OpCode == codec.OpContinuation) != in {
			m.t.Fatalf("queue: %v frame at %d, in a message: %v", h.OpCode, off, in)
		}
		if h.Rsv&^codec.Rsv3 != 0 || h.Rsv != 0 && h.OpCode == codec.OpContinuation {
			m.t.Fatalf("queue: RSV %#x on %v", h.Rsv, h.OpCode)
		}
		if !in {
			cur = cur[:0]
		}
		cur = append(cur, b[off+n:off+n+int(h.Length)]...)
		if !in {
			// the start of a message; its id is in its first 4 bytes,
			// which a fragment of 8+ bytes holds
			id := binary.BigEndian.Uint32(cur)
			ids = append(ids, id)
			if (h.Rsv == codec.Rsv3) == m.write[id] {
				m.t.Fatalf("queue: message %d (written: %v) has RSV %#x", id, m.write[id], h.Rsv)
			}
		}
		in = !h.Fin
		off += n + int(h.Length)
	}
	if in {
		m.t.Fatal("queue ends inside a message")
	}
	return ids
}

// check verifies the invariants.
func (m *sqModel) check() {
	queued := m.queuedIDs()
	// The conflation index points at first frames of its keys' latest
	// messages.
	starts := map[int]uint32{}
	if m.q.data != nil {
		b := m.q.data.B
		for off, in := int(m.q.head), m.inMsg; off < len(b); {
			h, n, _ := codec.ParseHeader(b[off:])
			if !in {
				starts[off] = binary.BigEndian.Uint32(b[off+n:])
			}
			in = !h.Fin
			off += n + int(h.Length)
		}
	}
	for k, abs := range m.ix.keys {
		at := int(abs - m.ix.base)
		if m.q.data == nil || at < int(m.q.head) {
			continue // handed to gnet: stale, ignored
		}
		id, ok := starts[at]
		if !ok {
			m.t.Fatalf("key %s at %d: not the start of a queued message", k, at)
		}
		if m.keyOf[id] < 0 || fmt.Sprint(m.keyOf[id]) != k || m.last[m.keyOf[id]] != id {
			m.t.Fatalf("key %s points at message %d (key %d)", k, id, m.keyOf[id])
		}
	}
	// Sent then queued: every written message, in the order pushed; the
	// published ones that are missing were dropped or replaced.
	all := append(append([]uint32(nil), m.sent...), queued...)
	if m.inMsg {
		// the started message is counted once, in sent's partial
		all = append(append([]uint32(nil), m.sent...), binary.BigEndian.Uint32(m.partial))
		all = append(all, queued...)
	}
	i := 0
	for _, id := range m.order {
		if i < len(all) && all[i] == id {
			i++
			continue
		}
		if m.write[id] {
			m.t.Fatalf("written message %d missing (or out of order): sent+queued %v, pushed %v", id, all, m.order)
		}
		if !m.gone[id] {
			m.t.Fatalf("published message %d missing but not dropped", id)
		}
	}
	if i != len(all) {
		m.t.Fatalf("sent+queued %v is not in push order %v", all, m.order)
	}
}

// run interprets ops, 3 bytes each: kind, a, b.
func (m *sqModel) run(ops []byte) {
	for len(ops) >= 3 {
		kind, a, b := ops[0]%7, int(ops[1]), int(ops[2])
		ops = ops[3:]
		frag := 8 + b%64
		switch kind {
		case 0:
			m.writeMsg(a, frag)
		case 1:
			m.publish(a, frag, -1, false)
		case 2:
			m.publish(a, frag, b%4, false)
		case 6:
			m.publish(a, frag, b%4, true)
		case 3:
			m.q.pushControl(codec.OpPing, []byte{byte(a)})
		case 4:
			m.dropOldest(a * 2)
		case 5:
			m.take(b%8 != 0, a+1)
		}
		m.check()
	}
	for m.q.data != nil || m.q.ctrl != nil {
		m.take(true, 1<<20)
		m.check()
	}
	if m.inMsg {
		m.t.Fatal("all taken, but the wire ends inside a message")
	}
	m.q.release()
}

// FuzzSendQueue runs random sequences of written and published messages
// (fragmented, some with conflation keys, replaced at the end or in
// place), control frames, drop-oldest
// decisions and partial takes on a sendQueue, checking after every step
// that the queue is whole frames, that no written message is lost or
// reordered, that conflation keys point at message starts, and that what
// is taken is whole frames with control frames only between data frames.
func FuzzSendQueue(f *testing.F) {
	f.Add([]byte{0, 10, 3, 1, 20, 5, 3, 1, 0, 5, 2, 9, 4, 30, 0, 5, 200, 1})
	f.Add([]byte{1, 50, 0, 1, 50, 0, 0, 50, 0, 5, 3, 1, 4, 255, 0, 5, 3, 1, 4, 255, 0})
	f.Add([]byte{2, 9, 1, 2, 9, 2, 5, 0, 0, 2, 9, 1, 2, 9, 5, 4, 40, 0, 5, 255, 1})
	f.Add([]byte{5, 2, 1, 0, 255, 0, 5, 3, 1, 3, 7, 0, 1, 80, 7, 4, 10, 0, 5, 0, 1})
	f.Add([]byte{6, 9, 1, 6, 30, 2, 1, 5, 0, 6, 90, 1, 6, 3, 2, 5, 20, 1, 6, 9, 1, 4, 10, 0, 5, 255, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3*64 { // longer sequences find nothing new, only cost
			return
		}
		newSQModel(t).run(ops)
	})
}

// BenchmarkDropOldest is a stalled SlowDropOldest subscriber's steady
// state: a queue of n published 1 KiB messages, and for each new one the
// oldest is dropped to make room. The cost per drop must not depend on n.
func BenchmarkDropOldest(b *testing.B) {
	msg := appendMessage(nil, codec.OpBinary, 0, make([]byte, 1024), 64<<10)
	for _, n := range []int{16, 256, 4096} {
		b.Run(fmt.Sprint("queue=", n), func(b *testing.B) {
			var q sendQueue
			for range n {
				q.push(msg, true)
			}
			b.ResetTimer()
			for range b.N {
				if d, _ := q.dropOldest(len(msg), false, nil); d != 1 {
					b.Fatalf("dropped %d", d)
				}
				q.push(msg, true)
			}
			b.StopTimer()
			q.release()
		})
	}
}

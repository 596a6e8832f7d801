//go:build !windows

package loop

import (
	"github.com/valyala/bytebufferpool"

	"github.com/wsgate/wsgate/codec"
)

// sendQueue is what a connection has to send and has not yet handed to
// gnet: data frames (messages and our close frame) in order, and control
// frames (pings, pongs) that go out ahead of them. Its buffers come from
// pools and go back as soon as they are empty, so an idle connection holds
// none. The Conn guards it with its mutex; the queue itself knows nothing
// of sockets (FuzzSendQueue drives it alone).
//
// Invariants, true after every method returns:
//
//   - data.B[head:] is a sequence of whole frames; before head are bytes
//     already handed to gnet (kept until compaction).
//   - ctrl.B is a sequence of whole control frames. take hands them out
//     before any data it takes, and data is taken in whole frames, so a
//     control frame goes out at the next frame boundary, never inside a
//     frame.
//   - A message pushed as droppable (a published message) has
//     rsvDroppable in its first frame's first byte; take clears the mark
//     in what it hands out. Only such messages are ever removed (by
//     dropOldest, unqueue); everything else (WriteMessage, our close
//     frame) is sent or the connection is failed.
//   - If the last take ended inside a message (take's mid; the caller
//     keeps it and passes it to dropOldest), gnet has the first frames of
//     the message at head: its remaining frames stay together at the
//     front.
//   - Every entry of the conflation index that lies at or after head
//     (keyIndex.pos) is the start of the first frame of a droppable
//     message queued with that key.
//
// outbound, gnet's outbound bytes after the last flush, is not the queue's
// but sits here so that the struct has no padding (Conn's size class).
type sendQueue struct {
	data     *bytebufferpool.ByteBuffer // data frames, in order; nil when empty
	ctrl     *bytebufferpool.ByteBuffer // control frames; nil when empty
	head     int32                      // bytes of data already handed to gnet
	outbound int32                      // gnet's outbound bytes after the last flush
}

// keyIndex is the conflation index of a queue: the position of the queued
// message of each key, as base + offset in data, so that compaction (which
// moves every offset) only moves base.
type keyIndex struct {
	keys map[string]int64
	base int64 // bytes removed from the front of data since keys was made
	// fence is the end (base + offset) of the last message written with
	// WriteMessage behind indexed ones: a key queued before it must not
	// take a new value's place in line, which would overtake the write.
	fence int64
}

// pos returns the offset in data of key's message, if the index has one.
func (ix *keyIndex) pos(key string) (int, bool) {
	abs, ok := ix.keys[key]
	return int(abs - ix.base), ok
}

func (ix *keyIndex) set(key string, at int) {
	if ix.keys == nil {
		ix.keys = make(map[string]int64)
	}
	ix.keys[key] = ix.base + int64(at)
}

// rsvDroppable marks, in the queue, the first frame of a published
// message: a policy may drop it, never one queued by WriteMessage. It is
// RSV3 in the frame's first byte, a bit never negotiated; take clears it
// before the frame is handed to gnet.
const rsvDroppable = codec.Rsv3 << 4

// queued returns the data bytes not yet handed to gnet.
func (q *sendQueue) queued() int {
	if q.data == nil {
		return 0
	}
	return len(q.data.B) - int(q.head)
}

// controls returns the control bytes queued.
func (q *sendQueue) controls() int {
	if q.ctrl == nil {
		return 0
	}
	return len(q.ctrl.B)
}

// buf returns the data buffer, taking one from the pool if there is none.
func (q *sendQueue) buf() *bytebufferpool.ByteBuffer {
	if q.data == nil {
		q.data = outPool.Get()
	}
	return q.data
}

// push appends whole frames (one message, or our close frame) and returns
// their offset; a droppable message gets its mark.
func (q *sendQueue) push(frames []byte, droppable bool) int {
	b := q.buf()
	at := len(b.B)
	b.B = append(b.B, frames...)
	if droppable {
		b.B[at] |= rsvDroppable
	}
	return at
}

// pushControl appends a control frame with payload (at most 125 bytes).
func (q *sendQueue) pushControl(op codec.OpCode, payload []byte) {
	if q.ctrl == nil {
		q.ctrl = ctrlPool.Get()
	}
	q.ctrl.B = codec.AppendFrame(q.ctrl.B, codec.Header{Fin: true, OpCode: op}, payload)
}

// discard drops all queued data not handed to gnet (a failing connection
// sends nothing more but its close frame); the rest of a message gnet has
// started is dropped too, as the connection ends with a protocol error
// anyway. The index is emptied.
func (q *sendQueue) discard(ix *keyIndex) {
	if q.data != nil {
		q.data.B = q.data.B[:q.head]
	}
	q.clearIndex(ix)
}

func (q *sendQueue) clearIndex(ix *keyIndex) {
	if ix != nil {
		ix.keys = nil
	}
}

// dropOldest removes published messages, oldest first, until need bytes
// are freed or none is left; the rest of a message gnet has started and
// messages that are not droppable stay, in order. It returns how many
// messages it removed and the bytes freed.
//
// Cost: the dropped messages' headers are read, and the bytes kept in
// front of them (the started message, any WriteMessage messages) are moved
// up to close the gap; nothing behind the dropped messages moves, so a
// drop costs the same whatever the queue holds. The conflation index is
// emptied rather than fixed (a conflating connection does not drop the
// oldest; one whose policy changed just loses the chance to replace the
// messages queued so far).
func (q *sendQueue) dropOldest(need int, mid bool, ix *keyIndex) (dropped, freed int) {
	if q.data == nil || need <= 0 {
		return 0, 0
	}
	b := q.data.B
	head := int(q.head)
	at := head
	if mid {
		at = messageEnd(b, at)
	}
	// Walk from head: kept messages stay, droppable ones go, until enough
	// is freed. kept records the kept spans, moved up below.
	var spans [8][2]int
	kept := spans[:0]
	keep := func(from, to int) {
		if n := len(kept); n > 0 && kept[n-1][1] == from {
			kept[n-1][1] = to
			return
		}
		kept = append(kept, [2]int{from, to})
	}
	if at > head {
		keep(head, at)
	}
	for at < len(b) && freed < need {
		end := messageEnd(b, at)
		if b[at]&rsvDroppable != 0 {
			dropped++
			freed += end - at
		} else {
			keep(at, end)
		}
		at = end
	}
	if dropped == 0 {
		return 0, 0
	}
	// Move the kept spans, last first, to end at at.
	dst := at
	for i := len(kept) - 1; i >= 0; i-- {
		s := kept[i]
		dst -= s[1] - s[0]
		copy(b[dst:], b[s[0]:s[1]])
	}
	q.head = int32(dst)
	q.clearIndex(ix)
	q.compact(ix)
	return dropped, freed
}

// unqueue removes the droppable message at offset at (conflation).
// Entries of ix behind it are moved with it.
func (q *sendQueue) unqueue(at int, ix *keyIndex) {
	b := q.data.B
	end := messageEnd(b, at)
	q.data.B = b[:at+copy(b[at:], b[end:])]
	n := int64(end - at)
	if ix.fence >= ix.base+int64(end) {
		ix.fence -= n
	}
	for k, abs := range ix.keys {
		switch p := abs - ix.base; {
		case p >= int64(end):
			ix.keys[k] = abs - n
		case p >= int64(at):
			delete(ix.keys, k)
		}
	}
}

// replace puts frames, one droppable message, in place of the droppable
// message at offset at (conflation: a key keeps its place in line, so
// that keys updated in turn are also sent in turn). Entries of ix behind
// it are moved with it; at's own entry stays.
func (q *sendQueue) replace(at int, frames []byte, ix *keyIndex) {
	b := q.data.B
	end := messageEnd(b, at)
	n := len(frames) - (end - at)
	if n > 0 {
		b = append(b, frames[:n]...) // room only: overwritten below
	}
	copy(b[at+len(frames):], b[end:])
	b = b[:len(b)-max(n, 0)+n]
	copy(b[at:], frames)
	b[at] |= rsvDroppable
	q.data.B = b
	if ix.fence >= ix.base+int64(end) {
		ix.fence += int64(n)
	}
	for k, abs := range ix.keys {
		if abs-ix.base >= int64(end) {
			ix.keys[k] = abs + int64(n)
		}
	}
}

// compact moves the unsent data to the front of its buffer once the sent
// part is at least as large, so the buffer does not grow by what was
// sent or dropped: each byte is moved at most once per byte before it
// left, amortised O(1).
func (q *sendQueue) compact(ix *keyIndex) {
	if q.head == 0 || int(q.head) < len(q.data.B)/2 {
		return
	}
	q.data.B = q.data.B[:copy(q.data.B, q.data.B[q.head:])]
	if ix != nil {
		ix.base += int64(q.head)
	}
	q.head = 0
}

// take hands out what goes to gnet next: all control frames, and data in
// whole frames up to limit bytes (at least one frame) when data is set.
// It clears the droppable marks of the frames it takes. ctrl, when not
// nil, is the caller's to return to ctrlPool once written; done, when not
// nil, is the data buffer chunk points into, emptied: the caller returns
// it to outPool once chunk is written. mid reports that chunk ends inside
// a message (the caller keeps it for dropOldest); msgs is the number of
// data messages whose last frame is in chunk.
func (q *sendQueue) take(data bool, limit int, ix *keyIndex) (ctrl *bytebufferpool.ByteBuffer, chunk []byte, done *bytebufferpool.ByteBuffer, mid bool, msgs int) {
	ctrl, q.ctrl = q.ctrl, nil
	if !data || q.data == nil {
		return ctrl, nil, nil, false, 0
	}
	q.compact(ix)
	b := q.data.B
	end, fin, msgs := frameBoundary(b, int(q.head), limit)
	chunk = b[q.head:end]
	q.head = int32(end)
	if end == len(b) {
		if ix != nil {
			ix.base += int64(end)
			ix.keys = nil
		}
		done, q.data, q.head = q.data, nil, 0
	}
	return ctrl, chunk, done, !fin, msgs
}

// release returns the queue's buffers to their pools (the connection is
// gone).
func (q *sendQueue) release() {
	if q.data != nil {
		outPool.Put(q.data)
	}
	if q.ctrl != nil {
		ctrlPool.Put(q.ctrl)
	}
	q.data, q.ctrl, q.head = nil, nil, 0
}

// frameBoundary returns the end of the last whole frame in b[from:] that
// keeps the chunk within limit bytes (at least one frame is taken), and
// whether that frame ends its message, and how many data messages end in
// it. It clears the queue's marks (rsvDroppable) in the frames it takes.
func frameBoundary(b []byte, from, limit int) (end int, fin bool, msgs int) {
	end, fin = from, true
	for end < len(b) {
		h, n, _ := codec.ParseHeader(b[end:]) // our own frames: valid
		next := end + n + int(h.Length)
		if next-from > limit && end > from {
			break
		}
		b[end] &^= rsvDroppable // a mark for the queue only, never sent
		end, fin = next, h.Fin
		if fin && h.OpCode != codec.OpClose {
			msgs++
		}
	}
	return end, fin, msgs
}

// messageEnd returns the end of the message whose first frame starts at
// b[at:] (after its FIN frame).
func messageEnd(b []byte, at int) int {
	for at < len(b) {
		h, n, _ := codec.ParseHeader(b[at:])
		at += n + int(h.Length)
		if h.Fin {
			break
		}
	}
	return at
}

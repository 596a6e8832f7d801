//go:build !windows

package loop

import (
	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// Shared streams: a published message compressed once, with history, for
// every subscriber whose window is the same.
//
// With server context takeover a client inflates each compressed message
// with the window of what it inflated before (RFC 7692 §7.2.2: the
// decompressor's history is its decompressed output; a message sent
// uncompressed, RSV1 clear, does not enter it). The server compresses
// with at most the last 2^HistoryBits bytes of that window as dictionary.
// Subscribers of a topic that have inflated the same last bytes can
// therefore be sent one compression of the next message, made with those
// bytes as dictionary: ~0.3 of the size of a 100–200-byte tick, where a
// compression without history (valid for every window) is ~1.0.
//
// A stream is one loop's such state for one topic and one class of
// connections (server_max_window_bits and History size, which fix the
// compressor's output): a History of the last messages compressed for
// the stream, the count of bytes ever added to it (pos), and, for the
// message being delivered, the frame compressed with that History.
//
// Each connection with server context takeover is in one of two modes:
//
//   - untracked (deflateState.sh == nil): as before streams, its own send
//     History is its window's end; published frames compressed without
//     history are added to it, WriteMessage compresses with it.
//   - tracked by one stream S (sh == S): its own History is empty (it
//     holds no per-connection history); instead from and at say that the
//     last S.pos-from bytes of its window are the last bytes added to
//     S's History, as of S.pos == at. A tracked connection is a member
//     when that run covers all of S's History (S.pos-from ≥ len) and it
//     has had every message of S since (at == S.pos): its window then
//     ends with S's History byte for byte, and it is sent S's frame.
//
// Delivering a message m of topic t to a connection c with takeover
// (deliver, under a policy that never drops a queued message:
// SlowDisconnect, SlowDropNewest):
//
//  1. S (t's stream for c's class) compresses m once per delivery with
//     its History, before any subscriber's frame is chosen; pos0 and len0
//     keep its state before m, add is len(m) if m went compressed (then m
//     is in the History) or 0 if not (it goes uncompressed to everyone).
//  2. A member (sh == S, at == pos0, pos0-from ≥ len0) gets S's frame.
//  3. Any other connection gets a frame whose effect on its window is the
//     same as S's frame on a member's: if add > 0, m compressed without
//     history (or as stored blocks when compression without history does
//     not pay), so its window gains m as S's History did; if add == 0, m
//     uncompressed, so neither changes.
//  4. Once m is queued: a connection that continues its run (sh == S,
//     at == pos0) keeps from; any other starts a run at m (from = pos0;
//     with add == 0 the run is empty). Then sh = S, at = pos. An untracked
//     connection that becomes tracked releases its own History. Its run
//     reaches len (and it becomes a member) after ≥ 2^HistoryBits bytes of
//     the stream, or at once while S's History is empty.
//  5. m not queued (dropped by the policy or the send budget, the
//     connection closing): nothing changes, so at < pos from then on once
//     add > 0: the connection is no longer a member and restarts its run
//     at its next message of S.
//
// What leaves a tracked connection's window unlike S's History makes it
// untracked, after materialising its own History from S's: the last
// min(run, len) bytes of S's History when at == S.pos (the window's end
// is known), else nothing (an empty History is always valid: output that
// refers to no history decodes in any window):
//
//   - a compressed message that is not one of S's: a message of another
//     topic (it then becomes tracked by that topic's stream instead, step
//     4), or a WriteMessage (compressed with the connection's own History
//     when flushed; flush leaves the stream first);
//   - a message of S delivered while a WriteMessage is queued (it is
//     compressed at flush after the write, with the connection's own
//     History): the History is materialised as it was before m, from the
//     bytes of S's History before its last add;
//   - a change to a policy that may drop queued messages (SlowDropOldest,
//     SlowConflate): a dropped message that later frames refer to would
//     break the peer's inflater. Frames queued while tracked are queued as
//     not droppable, so none already queued is ever dropped.
//
// A Broadcast reaches every connection of the loop, so it is a message of
// every stream that tracks a connection: delivered to a tracked
// connection it goes through the steps above with the connection's stream
// as S, except that a topic's stream does not compress it (that would be
// one compression per stream, and with one private topic per user one
// per connection). Instead step 1 is shallow: if the broadcast's
// compression without history for the class pays (made once per loop and
// class, PreparedMessage.compressed), S adds m to its History (add =
// len(m)) and every connection of S, member or not, is sent that frame;
// inflating it appends m to the window whatever the window held, as the
// add appended m to S's History, so members stay members (steps 2 and 3
// give the same frame). If it does not pay, m goes uncompressed to all
// and add == 0. Its tracked connections that miss it drop out at step 5.
// A connection tracked by no stream takes the loop's broadcast stream for
// its class as S (loopState.broadcasts, a topic without subscribers), so
// that connections that only get broadcasts share a history too.
//
// Messages sent uncompressed (WriteUncompressed, control frames) do not
// enter the window and change nothing. Unsubscribing changes nothing
// either: the run stays valid while no message of S is missed (at ==
// S.pos). A connection on two topics is tracked by the stream of the topic
// it last received, and is a member only after 2^HistoryBits bytes of
// one topic with none of the other in between.
//
// Memory: a stream holds one History per loop, topic and class; a tracked
// connection holds no History, only its deflateState. After
// Config.HistoryIdle without messages a connection becomes untracked
// (releaseIdle; the deflateState itself is kept only for client context
// takeover): it then refers to no stream, so a stream whose topic is gone
// is freed once its last tracked connection has been idle that long, and
// the connection has no History deadline left. It rejoins after a run. A
// stream's History is released after HistoryIdle without messages; its
// members stay members (an empty History makes every window match).
type stream struct {
	p    deflate.Params // the class: takeover, ServerMaxWindowBits, HistoryBits
	hist deflate.History
	pos  int64 // bytes ever added to hist

	// The message being delivered (seq is the loop's delivery count).
	seq    uint64
	pos0   int64  // pos before it
	len0   int    // hist.Len() before it
	add    int    // bytes it added to hist: len(msg) or 0
	frames []byte // compressed with history, framed (add > 0; empty after a shallow prepare)
	seed   []byte // compressed without history or stored, framed (add > 0); made on first need
	used   uint32 // tick of the last message
}

// shareable reports whether a connection under policy may be tracked by
// a stream: its policy never drops a message once queued.
func shareable(policy SlowPolicy) bool {
	return policy == SlowDisconnect || policy == SlowDropNewest
}

// stream returns t's stream for a connection with deflate parameters p,
// creating it. Event-loop only.
func (t *topic) stream(p deflate.Params) *stream {
	for _, st := range t.streams {
		if st.p.ServerMaxWindowBits == p.ServerMaxWindowBits && st.p.HistoryBits == p.HistoryBits {
			return st
		}
	}
	st := &stream{p: deflate.Params{ServerContextTakeover: true,
		ServerMaxWindowBits: p.ServerMaxWindowBits, HistoryBits: p.HistoryBits}}
	t.streams = append(t.streams, st)
	return st
}

// has reports whether st is one of t's streams.
func (t *topic) has(st *stream) bool {
	for _, s := range t.streams {
		if s == st {
			return true
		}
	}
	return false
}

// prepare compresses pm once for the current delivery (step 1). With
// shallow (a broadcast reaching a topic's stream) it does not compress:
// pm goes to every connection of the stream as its compression without
// history, and enters the History as that frame enters each window.
func (st *stream) prepare(ls *loopState, pm *PreparedMessage, shallow bool) {
	if st.seq == ls.seq {
		return
	}
	st.seq = ls.seq
	st.pos0, st.len0, st.add = st.pos, st.hist.Len(), 0
	st.frames, st.seed = keepBuf(st.frames), keepBuf(st.seed)
	st.used = ls.wheel.now
	if shallow {
		if pm.compressed(ls.srv, st.p.ServerMaxWindowBits) != nil {
			st.add = len(pm.payload)
			st.pos += int64(st.add)
			st.hist.Add(pm.payload, st.p)
		}
		return
	}
	min := 0
	if cfg := ls.srv.opts.Deflate; cfg != nil && cfg.Threshold > 0 {
		min = cfg.Threshold
	}
	z := zbufPool.Get()
	var ok bool
	z.B, ok = ls.compressor().AppendCompressShared(z.B[:0], pm.payload, st.p, &st.hist, min)
	if ok {
		st.add = len(pm.payload)
		st.pos += int64(st.add)
		st.frames = appendMessage(st.frames[:0], pm.op, codec.Rsv1, z.B, ls.srv.opts.FragmentSize)
	}
	zbufPool.Put(z)
}

// streamBufKeep is the largest capacity a stream's frame buffers keep from
// one message to the next: enough for every tick, so that a steady stream
// allocates nothing, while one large message is not held until the stream
// goes idle.
const streamBufKeep = 16 << 10

// keepBuf returns b emptied, or nil when its capacity is over
// streamBufKeep.
func keepBuf(b []byte) []byte {
	if cap(b) > streamBufKeep {
		return nil
	}
	return b[:0]
}

// choose returns the frames for c (steps 2 and 3) and whether they are
// compressed. After a shallow prepare every connection gets pm's
// compression without history.
func (st *stream) choose(ls *loopState, c *Conn, pm *PreparedMessage) ([]byte, bool) {
	if st.add == 0 {
		return pm.plain, false
	}
	if d := c.dfl(); len(st.frames) > 0 && d != nil && d.sh == st && d.at == st.pos0 && st.pos0-d.from >= int64(st.len0) {
		return st.frames, true
	}
	if len(st.seed) == 0 {
		if z := pm.compressed(ls.srv, st.p.ServerMaxWindowBits); z != nil {
			return z, true
		}
		z := zbufPool.Get()
		z.B = deflate.AppendStored(z.B[:0], pm.payload)
		st.seed = appendMessage(st.seed[:0], pm.op, codec.Rsv1, z.B, ls.srv.opts.FragmentSize)
		zbufPool.Put(z)
	}
	return st.seed, true
}

// tracked records that c was queued st's message (step 4).
func (c *Conn) tracked(st *stream) {
	d := c.takeover()
	if d.sh == nil {
		d.send.Release()
	}
	if d.sh != st || d.at != st.pos0 {
		d.from = st.pos0
	}
	d.sh, d.at = st, st.pos
	d.used = c.ls.wheel.now
}

// dfl returns c's deflateState, or nil.
func (c *Conn) dfl() *deflateState {
	if m := c.more(); m != nil {
		return m.dfl
	}
	return nil
}

// untrack makes c untracked, materialising its own send History from its
// stream's (see the design above). With before, the stream's current
// message has not reached c: the History is the one before it.
// Event-loop only.
func (c *Conn) untrack(before bool) {
	d := c.dfl()
	if d == nil || d.sh == nil {
		return
	}
	st := d.sh
	d.sh = nil
	d.send.Release()
	b := st.hist.Bytes()
	end, at := len(b), st.pos
	if before {
		end, at = max(len(b)-st.add, 0), st.pos0
	}
	if d.at != at || c.state != stateOpen {
		return
	}
	n := min(int(at-d.from), end)
	if n > 0 {
		d.send.Add(b[end-n:end], c.dparams)
		d.used = c.ls.wheel.now
	}
}

// releaseStreams releases the History of the loop's streams that have
// had no message for Config.HistoryIdle, looking every half of it.
// Event-loop only.
func (ls *loopState) releaseStreams(now uint32) {
	idle := ls.srv.historyTicks
	if ls.srv.opts.Deflate == nil || now-ls.swept < max(idle/2, 1) {
		return
	}
	ls.swept = now
	ls.broadcasts.releaseStreams(now, idle)
	for _, t := range ls.topics {
		t.releaseStreams(now, idle)
	}
}

func (t *topic) releaseStreams(now, idle uint32) {
	for _, st := range t.streams {
		if st.hist.Len() > 0 && now-st.used >= idle {
			st.hist.Release()
			st.frames, st.seed = nil, nil
		}
	}
}

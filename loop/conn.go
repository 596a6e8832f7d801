//go:build !windows

package loop

import (
	"context"
	"net"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/upgrade"
)

// Connection states, in order.
const (
	stateHandshake uint8 = iota
	stateOpen
	stateClosing // our close frame is queued; waiting for the peer's
	stateClosed
)

// Read-side flags (event-loop only).
const (
	rFailed   uint8 = 1 << iota // protocol failure: input is discarded
	rInFrame                    // a data frame's payload is being streamed
	rShutWr                     // write side shut down after our close frame
	rUpgraded                   // counted in Server.conns
	rFin                        // the streamed data frame is the message's last
	rGarbled                    // failed on broken framing: no frame boundaries to follow
	rDeflate                    // permessage-deflate negotiated
	rTouched                    // in loopState.touched: flush after the drain
)

// Write-side flags (guarded by Conn.mu).
const (
	wBusy        uint16 = 1 << iota // the loop is inside a callback for this conn and flushes after it
	wScheduled                      // a Wake is on its way to flush
	wCloseQ                         // a close frame is queued: no more data accepted
	wSlow                           // MaxPendingBytes was exceeded: fail with 1008
	wClosed                         // OnClose ran: buffers released
	wCloseSent                      // the close frame has been handed to gnet
	wDeflate                        // permessage-deflate negotiated: compress data frames
	wMidMsg                         // gnet has part of a fragmented message: its rest must follow
	wMarkers                        // out holds messages that flush must compress
	wPeerClose                      // the peer's close frame was received
	wCloseCalled                    // Close was called (its frame may still wait in the inbox)
	wBehind                         // conflating: the last flush left data in the queue
	wWrote                          // a message was written since the last delivery: see keyIndex.fence
	wBacklog                        // in the loop's backlog (event-loop only; here for want of room)
	wStaged                         // loopState.staged is this connection's whole data queue: see stageLocked
)

// Buffer pools, one per purpose so that bytebufferpool's size calibration
// sees one size distribution each.
var (
	inPool   bytebufferpool.Pool // partial input: handshake bytes, a header or control frame cut short
	msgPool  bytebufferpool.Pool // messages assembled from fragments or from several reads
	outPool  bytebufferpool.Pool // queued outgoing data frames
	ctrlPool bytebufferpool.Pool // queued outgoing control frames; 101 and rejection responses
	reqPool  = sync.Pool{New: func() any { return new(upgrade.Request) }}
	rdPool   = sync.Pool{New: func() any { return new(reader) }}
)

// reader is what a connection keeps between two reads while its input is
// incomplete: the upgrade request, a header or control frame cut short,
// the data frame being streamed and the message being assembled. An idle
// connection has none: moving these 56 bytes out of Conn brought it from
// the 192-byte size class to 144 (TestIdleMemory, back-to-back runs: 630 →
// 582 B of heap, 661 → 622 B of RSS per idle connection at 160 bytes).
// Conn is back at 160 bytes with the first topic inline (Conn.t0), which
// a subscribed connection would otherwise hold in a connExt and topicRef.
type reader struct {
	in    *bytebufferpool.ByteBuffer // partial input
	msg   *bytebufferpool.ByteBuffer // message being assembled
	req   *upgrade.Request           // during the handshake only
	fleft int64                      // payload bytes left in the current data frame
	fkey  [4]byte                    // mask key of the current frame
	fpos  uint8                      // mask phase within the current frame
	mop   codec.OpCode               // opcode of the message being assembled
	utf8  codec.UTF8
	// The frame sequence; between messages it is in its zero state and
	// needs no reader.
	stream codec.Stream
	// since is 1 + the tick at which the input still incomplete (a partial
	// header or control frame, or a message not yet whole) began; 0 when
	// there is none. It must complete within Options.MessageTimeout.
	since uint32
	// reserved is what this connection's message being assembled holds of
	// Options.MessageBudget.
	reserved int64
}

// r returns c's reader, taking one from the pool if it has none.
// Event-loop only.
func (c *Conn) r() *reader {
	if c.rd == nil {
		c.rd = rdPool.Get().(*reader)
	}
	return c.rd
}

// trimReader returns c's reader to the pool once it holds nothing.
// Event-loop only.
func (c *Conn) trimReader() {
	if rd := c.rd; rd != nil && rd.in == nil && rd.msg == nil && rd.req == nil && rd.fleft == 0 &&
		c.rflags&rInFrame == 0 && !rd.stream.InMessage() {
		*rd = reader{}
		rdPool.Put(rd)
		c.rd = nil
	}
}

// releaseReader returns c's reader and its buffers. Event-loop only.
func (c *Conn) releaseReader() {
	rd := c.rd
	if rd == nil {
		return
	}
	if rd.in != nil {
		inPool.Put(rd.in)
	}
	if rd.msg != nil {
		msgPool.Put(rd.msg)
	}
	c.releaseReq()
	c.unreserve()
	*rd = reader{}
	rdPool.Put(rd)
	c.rd = nil
}

// Conn is one WebSocket connection. Its methods say whether they may be
// called from any goroutine or only from the connection's event loop, i.e.
// from inside the Handler callbacks for this connection.
//
// An idle connection holds this struct and nothing else: input is consumed
// entirely on every read (a partial header or control frame is kept in a
// pooled buffer only until it completes), and the send queues are returned
// to their pools as soon as they drain.
type Conn struct {
	gc    gnet.Conn
	ls    *loopState
	raddr *net.TCPAddr // set by OnOpen and accept: gnet clears its own at close

	// event-loop only
	rd     *reader // nil unless input is incomplete: see reader
	state  uint8
	rflags uint8
	proto  uint8 // 1 + index of the subprotocol in Options.Protocols; 0: none
	// permessage-deflate parameters (5 bytes: fits in padding)
	dparams deflate.Params
	ext     *connExt // nil unless needed: see connExt
	t0      topicRef // the first topic (t nil: none); the others are in ext

	// timing wheel (event-loop only)
	next, prev *Conn
	due        uint32 // tick of the next deadline check
	lastRead   uint32 // tick of the last input
	// mark is, while open, the tick of the last ping we sent; during the
	// handshake or the closing handshake, the tick of its deadline. One
	// field for both keeps Conn in its size class.
	mark uint32

	// send side, guarded by mu
	mu     sync.Mutex
	wflags uint16
	policy uint8       // SlowPolicy; event-loop only (here: it fits in padding)
	q      sendQueue   // what is not yet handed to gnet
	cerr   *CloseError // how it ends: our queued close frame, or the peer's

	value any
}

// Value returns the value Options.Authorize attached, or the last one set
// with SetValue. Safe from any goroutine if set only before OnOpen.
func (c *Conn) Value() any { return c.value }

// SetValue attaches v to the connection. Event-loop only.
func (c *Conn) SetValue(v any) { c.value = v }

// Subprotocol returns the negotiated subprotocol ("" if none). Safe from
// any goroutine.
func (c *Conn) Subprotocol() string {
	if c.proto == 0 {
		return ""
	}
	return c.ls.srv.opts.Protocols[c.proto-1]
}

// RemoteAddr returns the peer's address, or the client's address that a
// trusted proxy forwarded (see Options.TrustedProxies). Safe from any
// goroutine, also after the connection has closed: it is set before
// OnOpen and never changes after.
func (c *Conn) RemoteAddr() net.Addr {
	if c.raddr == nil {
		return nil
	}
	return c.raddr
}

// PendingBytes returns the bytes queued for this connection and not yet
// accepted by the kernel (as of the last flush). Safe from any goroutine.
func (c *Conn) PendingBytes() int {
	c.mu.Lock()
	n := c.pendingLocked()
	c.mu.Unlock()
	return n
}

// queuedLocked is the part of pendingLocked still in our queue.
func (c *Conn) queuedLocked() int { return c.q.queued() }

func (c *Conn) pendingLocked() int { return int(c.q.outbound) + c.q.queued() + c.q.controls() }

// index returns c's conflation index, or nil if it has none. Guarded by
// c.mu.
func (c *Conn) index() *keyIndex {
	if m := c.more(); m != nil {
		return &m.ix
	}
	return nil
}

// WriteMessage queues payload as one message (op is OpText or OpBinary)
// and returns without waiting for the peer. Safe from any goroutine.
// payload is copied: the caller may reuse it at once. A message larger
// than Options.FragmentSize goes out as several frames so that pings and
// pongs are not held up behind it.
//
// Order: what one goroutine (or the event loop) does for c reaches c in
// that order. A message written after a Publish, Broadcast, Subscribe or
// Unsubscribe that concerns c comes after it: after the published message,
// and after the subscription change (so a reply written after Subscribe
// precedes every message published after Subscribe returned, and none
// published before it reaches c through the topic).
//
// It fails with ErrClosed once the connection is closing, and with
// ErrSlowConsumer when the pending bytes would exceed MaxPendingBytes (the
// connection is then closed with 1008). While the loop still has
// deliveries to make (the message then waits behind them) neither is
// known yet: the message is dropped if the connection is closed by then,
// and a slow consumer is closed with 1008 without an error here.
func (c *Conn) WriteMessage(op codec.OpCode, payload []byte) error {
	return c.writeMessage(op, payload, true)
}

// WriteUncompressed is WriteMessage for a message that is sent without
// permessage-deflate even where it was negotiated: one that is known not
// to compress (already compressed media, random bytes), or that must cost
// no compression time. Without deflate it is WriteMessage. Safe from any
// goroutine.
func (c *Conn) WriteUncompressed(op codec.OpCode, payload []byte) error {
	return c.writeMessage(op, payload, false)
}

func (c *Conn) writeMessage(op codec.OpCode, payload []byte, compress bool) error {
	if op != codec.OpText && op != codec.OpBinary {
		return ErrNotData
	}
	ls := c.ls
	ls.inboxMu.Lock()
	if !ls.busy {
		ls.inboxMu.Unlock()
		return c.queueMessage(op, payload, compress)
	}
	// Deliveries decided before this write are still in the loop's inbox:
	// the message takes its place behind them.
	c.mu.Lock()
	closed := c.wflags&(wCloseQ|wClosed|wSlow) != 0
	c.mu.Unlock()
	if closed {
		ls.inboxMu.Unlock()
		return ErrClosed
	}
	ls.inbox = append(ls.inbox, delivery{kind: dWrite, c: c, op: op, compress: compress,
		msg: append([]byte(nil), payload...)})
	first := len(ls.inbox) == 1
	ls.inboxMu.Unlock()
	if first {
		return ls.el.Execute(context.Background(), ls.drainer)
	}
	return nil
}

// queueMessage appends a message to c's queue and makes sure it will be
// flushed.
func (c *Conn) queueMessage(op codec.OpCode, payload []byte, compress bool) error {
	c.mu.Lock()
	if c.wflags&(wCloseQ|wClosed|wSlow) != 0 {
		c.mu.Unlock()
		return ErrClosed
	}
	c.unstageLocked()
	pending := c.pendingLocked() + len(payload) + codec.MaxHeaderSize
	if pending > c.ls.srv.opts.MaxPendingBytes || c.overSendBudgetLocked(pending) {
		// Above MaxPendingBytes; or behind beyond its allowance while
		// the send budget is spent, as a peer that sends and never reads
		// its answers would leave it.
		c.wflags |= wSlow
		c.unlockAndFlush()
		return ErrSlowConsumer
	}
	b := c.q.buf()
	if compress && c.wflags&wDeflate != 0 {
		// compressed on the loop by flush; see deflate.go
		b.B = codec.AppendFrame(b.B, codec.Header{Fin: true, Rsv: rsvDeflate, OpCode: op}, payload)
		c.wflags |= wMarkers
	} else {
		b.B = appendMessage(b.B, op, 0, payload, c.ls.srv.opts.FragmentSize)
	}
	c.wflags |= wWrote
	c.unlockAndFlush()
	return nil
}

// appendMessage appends payload as unmasked server frames of at most frag
// payload bytes each; rsv goes on the first frame only.
func appendMessage(dst []byte, op codec.OpCode, rsv byte, payload []byte, frag int) []byte {
	for {
		n := min(len(payload), frag)
		h := codec.Header{Fin: n == len(payload), Rsv: rsv, OpCode: op}
		dst = codec.AppendFrame(dst, h, payload[:n])
		payload = payload[n:]
		if len(payload) == 0 {
			return dst
		}
		op, rsv = codec.OpContinuation, 0
	}
}

// Ping queues a ping with payload (at most 125 bytes) ahead of queued data.
// Safe from any goroutine.
func (c *Conn) Ping(payload []byte) error {
	return c.writeControl(codec.OpPing, payload)
}

func (c *Conn) writeControl(op codec.OpCode, payload []byte) error {
	if len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	c.mu.Lock()
	if c.wflags&(wClosed|wCloseSent) != 0 {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.pendingLocked()+len(payload)+2 > c.ls.srv.opts.MaxPendingBytes {
		// A peer that pings without reading our pongs is a slow consumer too.
		c.wflags |= wSlow
		c.unlockAndFlush()
		return ErrSlowConsumer
	}
	c.q.pushControl(op, payload)
	c.unlockAndFlush()
	return nil
}

// unlockAndFlush releases c.mu and makes sure the queue will be flushed:
// nothing to do if the loop is inside a callback for this connection (it
// flushes on the way out) or a wake-up is already on its way; otherwise it
// wakes the loop.
func (c *Conn) unlockAndFlush() {
	if c.wflags&(wBusy|wScheduled|wClosed) != 0 {
		c.mu.Unlock()
		return
	}
	c.wflags |= wScheduled
	c.mu.Unlock()
	if err := c.gc.Wake(nil); err != nil {
		c.mu.Lock()
		c.wflags &^= wScheduled
		c.mu.Unlock()
	}
}

// maxFlush bounds the data handed to gnet at once, and lowWater is the
// level gnet's outbound buffer must be under to be given more. Together
// they keep at most ~lowWater+maxFlush bytes ahead of a ping or pong, and
// keep a slow peer's backlog in our queue, where MaxPendingBytes applies.
const (
	maxFlush = 256 << 10
	lowWater = 256 << 10
)

// flush hands queued frames to gnet: control frames first, then data up to
// maxFlush bytes cut at a frame boundary while gnet's own buffer is low
// (for a conflating connection, also within its window: see sendWindow).
// It clears wBusy and wScheduled. It reports whether data is left behind.
// Event-loop only.
func (c *Conn) flush() (backlog bool) {
	// Clear wBusy with the read of the flags: a Close or a write that
	// comes after this read must wake the loop again, or its flag would
	// be seen by nobody.
	c.mu.Lock()
	flags := c.wflags
	c.wflags &^= wBusy | wScheduled
	c.mu.Unlock()
	switch {
	case flags&wClosed != 0:
		return false
	case flags&wSlow != 0 && c.state == stateOpen:
		c.fail(ErrSlowConsumer)
	case flags&wCloseQ != 0 && c.state == stateOpen:
		c.enterClosing(nil) // Close was called from some goroutine
	}
	out := c.gc.OutboundBuffered()
	limit, held := maxFlush, false
	var w *sendWindow
	if c.state == stateOpen && c.policy == uint8(SlowConflate) {
		w, limit, held = c.window(out)
	}
	c.mu.Lock()
	markers := c.wflags&wMarkers != 0 // only then has the chunk frames to compress
	send := out < lowWater && limit > 0
	if !send {
		c.unstageLocked()
	}
	ctrl, chunk, done, mid, msgs := c.q.take(c.q.data != nil && send, limit, c.index())
	if c.wflags&wStaged != 0 { // the whole data queue, not copied
		c.wflags &^= wStaged
		chunk, _ = c.framesOf(c.ls.staged)
		msgs = 1
	}
	if chunk != nil {
		c.wflags &^= wMidMsg
		if mid {
			c.wflags |= wMidMsg
		}
	}
	closeOut, echo := false, false
	if done != nil {
		c.wflags &^= wMarkers
		if c.wflags&wCloseQ != 0 {
			c.wflags |= wCloseSent
			closeOut = true
			echo = c.cerr != nil && c.cerr.Remote
		}
	}
	c.mu.Unlock()

	st := &c.ls.stats
	if closeOut { // our close frame is the chunk's last frame
		code, _, _ := codec.ParseClose(lastFramePayload(chunk))
		if echo {
			code = peerCode(code)
		}
		st.closed(code, true)
	}
	st.msgsOut.Add(int64(msgs))
	if markers && len(chunk) > 0 {
		c.untrack(false) // a written message enters the window: see stream
		z := c.compressFrames(chunk)
		defer zbufPool.Put(z)
		chunk = z.B
	}
	// A write that fails makes gnet close the connection at once: OnClose
	// runs inside Write, returns the queue (which chunk may point into) to its
	// pool and the descriptor is closed, so nothing more may touch them.
	st.bytesOut.Add(int64(len(chunk)))
	if ctrl != nil {
		st.bytesOut.Add(int64(len(ctrl.B)))
		_, _ = c.gc.Write(ctrl.B)
		ctrlPool.Put(ctrl)
	}
	if len(chunk) > 0 && c.state != stateClosed {
		_, _ = c.gc.Write(chunk)
	}
	if done != nil {
		outPool.Put(done)
	}
	if c.state == stateClosed {
		return false
	}

	out = c.gc.OutboundBuffered()
	c.mu.Lock()
	c.q.outbound = int32(out)
	c.chargeLocked()
	// gnet drains its buffer without telling us: while it holds bytes,
	// come back (the loop's backlog, every 10 ms) so that outbound, and
	// with it PendingBytes and the slow-consumer checks, follow it to 0.
	// The same poll gives a conflating connection the next part of its
	// queue once its window has room.
	backlog = c.q.data != nil || out > 0
	c.wflags &^= wBehind
	if c.policy == uint8(SlowConflate) && c.q.data != nil {
		c.wflags |= wBehind
	}
	if w != nil && c.q.data == nil && out == 0 && !held {
		w.idle = true
	}
	closeSent := c.wflags&wCloseSent != 0
	c.mu.Unlock()
	if closeSent && c.rflags&rShutWr == 0 {
		if out > 0 {
			return true // shut down once gnet has written the close frame
		}
		// The close frame is in the kernel: send FIN after it. The peer
		// answers with its close frame (or closes), which ends the
		// connection; CloseTimeout covers a peer that does neither.
		c.rflags |= rShutWr
		_ = unix.Shutdown(c.gc.Fd(), unix.SHUT_WR)
	}
	return backlog
}

// sendAllowance is what a connection may hold for sending outside
// Options.SendBudget: healthy peers whose kernel buffer is momentarily
// full stay within it and never see the budget; a stalled peer's bytes
// above it are charged.
const sendAllowance = 64 << 10

// chargeLocked sets what c holds of Options.SendBudget: its pending bytes
// above sendAllowance. Only connections that far behind write the shared
// counter: at each flush, and for each published message queued while
// they are behind. c.mu held; event-loop only.
func (c *Conn) chargeLocked() {
	var had int64
	if m := c.more(); m != nil {
		had = m.charged
	}
	n := max(int64(c.pendingLocked())-sendAllowance, 0)
	if n == had {
		return
	}
	c.ls.srv.sendUsed.Add(n - had)
	c.m().charged = n
	if n == 0 {
		c.dropExt()
	}
}

// behindLocked reports whether c is behind: gnet held bytes the kernel
// would not take at the last flush, or (conflating) that flush left data
// queued because the window was full. c.mu held.
func (c *Conn) behindLocked() bool { return c.q.outbound > 0 || c.wflags&wBehind != 0 }

// overSendBudgetLocked reports whether c, holding pending bytes with
// what it is being given, must get nothing more: it is behind beyond its
// allowance while Options.SendBudget is spent. c.mu held.
func (c *Conn) overSendBudgetLocked(pending int) bool {
	return c.behindLocked() && pending > sendAllowance && c.ls.srv.sendSpent()
}

// sendSpent reports whether Options.SendBudget is spent.
func (s *Server) sendSpent() bool {
	return s.opts.SendBudget > 0 && s.sendUsed.Load() > s.opts.SendBudget
}

// lastFramePayload returns the payload of the last frame in b, whole
// frames of our own.
func lastFramePayload(b []byte) []byte {
	var p []byte
	for len(b) > 0 {
		h, n, _ := codec.ParseHeader(b)
		p = b[n : n+int(h.Length)]
		b = b[n+int(h.Length):]
	}
	return p
}

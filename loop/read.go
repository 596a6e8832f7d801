//go:build !windows

package loop

import (
	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/wsgate/wsgate/codec"
)

// read consumes data, all of it: what cannot be parsed yet (an incomplete
// request, frame header or control frame) is kept in c.rd.in, a pooled
// buffer, so gnet's own per-connection buffer stays empty. Any byte left
// in gnet makes it keep an inbound ring of at least 1 KiB for the
// connection: TestIdleMemory measures both ("bare gnet, input consumed"
// against "3 bytes left in gnet": about 0.4 KB against 1.5 KB per idle
// connection).
func (c *Conn) read(data []byte) gnet.Action {
	buf := data
	var in *bytebufferpool.ByteBuffer
	if c.rd != nil && c.rd.in != nil {
		in = c.rd.in
		in.B = append(in.B, data...)
		buf = in.B
	}
	n, act := c.consume(buf)
	rest := buf[n:]
	switch {
	case act != gnet.None || c.state == stateClosed:
		c.releaseReader()
		return act
	case in != nil && len(rest) == 0:
		inPool.Put(in)
		c.rd.in = nil
	case in != nil:
		in.B = in.B[:copy(in.B, rest)]
	case len(rest) > 0:
		in = inPool.Get()
		in.B = append(in.B[:0], rest...)
		c.r().in = in
	}
	c.timeIncomplete()
	c.trimReader()
	return act
}

// completed stops the MessageTimeout clock: a message or control frame is
// whole. Input left incomplete after this read starts it again (see
// timeIncomplete). Event-loop only.
func (c *Conn) completed() {
	if c.rd != nil {
		c.rd.since = 0
	}
}

// timeIncomplete starts the MessageTimeout clock when an open connection
// is left with incomplete input (a message, frame header or control frame
// begun since the last one completed), and stops it once there is none.
// Bytes that trickle in keep the connection from idling out, but not past
// this deadline. Event-loop only.
func (c *Conn) timeIncomplete() {
	rd := c.rd
	if rd == nil || c.state != stateOpen {
		return
	}
	switch incomplete := rd.in != nil || rd.msg != nil || c.rflags&rInFrame != 0; {
	case !incomplete:
		rd.since = 0
	case rd.since == 0:
		rd.since = c.ls.wheel.now + 1
		if c.ls.srv.msgTicks > 0 {
			c.ls.reschedule(c)
		}
	}
}

// reserve takes n bytes of Options.MessageBudget for the message being
// assembled; false if the budget has no room. Event-loop only.
func (c *Conn) reserve(n int64) bool {
	s := c.ls.srv
	if s.msgUsed.Add(n) > s.opts.MessageBudget {
		s.msgUsed.Add(-n)
		return false
	}
	c.r().reserved += n
	return true
}

// unreserve gives back what the message being assembled held of
// Options.MessageBudget. Event-loop only.
func (c *Conn) unreserve() {
	if rd := c.rd; rd != nil && rd.reserved != 0 {
		c.ls.srv.msgUsed.Add(-rd.reserved)
		rd.reserved = 0
	}
}

// consume parses buf according to the state and returns how many bytes it
// used.
func (c *Conn) consume(buf []byte) (int, gnet.Action) {
	if c.state == stateHandshake {
		n, err := c.rd.req.Parse(buf)
		if err != nil {
			c.reject(err)
			return len(buf), gnet.Close
		}
		if n == 0 {
			return 0, gnet.None
		}
		if !c.accept() {
			return len(buf), gnet.Close
		}
		m, act := c.readFrames(buf[n:])
		return n + m, act
	}
	return c.readFrames(buf)
}

// readFrames parses and handles the frames in p and returns the bytes
// used; the rest is an incomplete header or control frame.
func (c *Conn) readFrames(p []byte) (int, gnet.Action) {
	rules := &c.ls.srv.rules
	if c.rflags&rDeflate != 0 {
		rules = &c.ls.srv.rulesZ
	}
	off := 0
	for off < len(p) {
		if c.rflags&rFailed != 0 {
			m, act := c.discard(p[off:])
			return off + m, act
		}
		if c.state == stateClosed {
			return len(p), gnet.None
		}
		if c.rflags&rInFrame != 0 {
			rd := c.rd
			k := int(min(rd.fleft, int64(len(p)-off)))
			chunk := p[off : off+k]
			off += k
			rd.fpos = uint8(codec.Mask(chunk, rd.fkey, int(rd.fpos)))
			rd.fleft -= int64(k)
			if !c.payload(chunk) {
				continue
			}
			if rd.fleft == 0 {
				c.endFrame()
			}
			continue
		}
		h, n, err := codec.ParseHeader(p[off:])
		if err != nil {
			c.rflags |= rGarbled // the framing itself is broken
			c.fail(err)
			return len(p), gnet.None
		}
		// Between messages the frame sequence is in its zero state, so a
		// connection without a reader checks against a zero Stream, kept
		// below only if the frame leaves a message open.
		var idle codec.Stream
		st := &idle
		if c.rd != nil {
			st = &c.rd.stream
		}
		if n > 0 {
			if err := st.Next(h, rules); err != nil {
				c.fail(err)
				if h.Length > 0 {
					c.r().fleft = h.Length // framing is intact: skip the payload
				}
				off += n
				continue
			}
		}
		if n == 0 {
			break // header incomplete
		}
		if h.OpCode.IsControl() {
			end := off + n + int(h.Length)
			if end > len(p) {
				break // keep the whole control frame until it is complete
			}
			payload := p[off+n : end]
			codec.Mask(payload, h.Mask, 0)
			off = end
			if act := c.control(h.OpCode, payload); act != gnet.None {
				return len(p), act
			}
			continue
		}
		off += n
		if h.Fin && h.OpCode != codec.OpContinuation && h.Length <= int64(len(p)-off) {
			// The common case: a whole single-frame message is here;
			// unmask and deliver it in place, no copy.
			payload := p[off : off+int(h.Length)]
			off += len(payload)
			codec.Mask(payload, h.Mask, 0)
			if h.Rsv&codec.Rsv1 != 0 {
				c.inflate(h.OpCode, payload)
				continue
			}
			if h.OpCode == codec.OpText {
				var v codec.UTF8
				if !v.Write(payload) || !v.Complete() {
					c.fail(codec.ErrInvalidUTF8)
					continue
				}
			}
			c.deliver(h.OpCode, payload)
			continue
		}
		// Stream the payload into the message buffer as it arrives, once
		// the server-wide budget has room for it.
		if h.Length > 0 && !c.reserve(h.Length) {
			c.fail(ErrMessageBudget)
			c.r().fleft = h.Length // framing is intact: skip the payload
			continue
		}
		rd := c.r()
		if st == &idle {
			rd.stream = idle
		}
		if h.OpCode != codec.OpContinuation {
			rd.mop = h.OpCode
			rd.utf8.Reset()
			rd.msg = msgPool.Get()
		}
		rd.fkey, rd.fpos, rd.fleft = h.Mask, 0, h.Length
		c.rflags |= rInFrame
		if h.Fin {
			c.rflags |= rFin
		}
		if h.Length == 0 {
			c.endFrame()
		}
	}
	return off, gnet.None
}

// discard reads a failed connection: nothing more is delivered or
// answered, but frame boundaries are followed so that the peer's reply to
// our close frame is seen, and the TCP connection closed then
// (RFC 6455 §7.1.1), without waiting for CloseTimeout. Where the framing
// itself is broken, any input after our close frame is out ends it.
func (c *Conn) discard(p []byte) (int, gnet.Action) {
	if c.rflags&rGarbled != 0 {
		if c.rflags&rShutWr != 0 {
			return len(p), gnet.Close
		}
		return len(p), gnet.None
	}
	off := 0
	for off < len(p) {
		if rd := c.rd; rd != nil && rd.fleft > 0 {
			k := int(min(rd.fleft, int64(len(p)-off)))
			off += k
			rd.fleft -= int64(k)
			continue
		}
		h, n, err := codec.ParseHeader(p[off:])
		switch {
		case err != nil:
			return len(p), gnet.Close
		case h.OpCode == codec.OpClose:
			c.mu.Lock()
			c.wflags |= wPeerClose
			c.mu.Unlock()
			return len(p), c.closeAfterOurs()
		case n == 0:
			return off, gnet.None // keep the partial header
		}
		off += n
		if h.Length > 0 {
			c.r().fleft = h.Length
		}
	}
	return off, gnet.None
}

// payload takes the next unmasked chunk of a streamed data frame. A text
// message fails with 1007 as soon as its bytes cannot be UTF-8.
func (c *Conn) payload(chunk []byte) bool {
	rd := c.rd
	if rd.mop == codec.OpText && !rd.stream.Compressed() && !rd.utf8.Write(chunk) {
		c.fail(codec.ErrInvalidUTF8)
		return false
	}
	rd.msg.B = append(rd.msg.B, chunk...)
	return true
}

// endFrame finishes a streamed data frame and delivers the message after
// its final frame.
func (c *Conn) endFrame() {
	fin := c.rflags&rFin != 0
	c.rflags &^= rInFrame | rFin
	if !fin {
		return // more fragments to come
	}
	rd := c.rd
	msg, op := rd.msg, rd.mop
	rd.msg = nil
	c.unreserve()
	if rd.stream.Compressed() {
		c.inflate(op, msg.B)
		msgPool.Put(msg)
		return
	}
	if op == codec.OpText && !rd.utf8.Complete() {
		msgPool.Put(msg)
		c.fail(codec.ErrInvalidUTF8)
		return
	}
	c.deliver(op, msg.B)
	msgPool.Put(msg) // returned as soon as the handler has returned
}

func (c *Conn) deliver(op codec.OpCode, payload []byte) {
	c.completed()
	if c.state != stateOpen {
		return // closing: data after our close frame is discarded
	}
	c.mu.Lock()
	flags := c.wflags
	c.mu.Unlock()
	switch {
	case flags&wCloseQ != 0: // Close was called (by the handler, or on some goroutine)
		c.enterClosing(nil)
		return
	case flags&wCloseCalled != 0: // and its close frame waits in the inbox
		return
	}
	c.ls.stats.msgsIn.Add(1)
	c.ls.srv.handler.OnMessage(c, op, payload)
}

// control handles a ping, pong or close frame.
func (c *Conn) control(op codec.OpCode, payload []byte) gnet.Action {
	c.completed()
	switch op {
	case codec.OpPing:
		if c.state == stateOpen {
			_ = c.writeControl(codec.OpPong, payload)
		}
	case codec.OpClose:
		c.mu.Lock()
		c.wflags |= wPeerClose
		c.mu.Unlock()
		code, reason, err := codec.ParseClose(payload)
		if err == nil {
			c.ls.stats.closed(peerCode(code), false)
		}
		if err != nil {
			if c.state == stateClosing { // ours is out or queued: nothing to wait for
				c.mu.Lock()
				if c.cerr.Err == nil {
					c.cerr.Err = err
				}
				c.mu.Unlock()
				return c.closeAfterOurs()
			}
			c.fail(err)
			return gnet.None
		}
		if c.state == stateClosing {
			// The peer answered our close: the handshake is complete and
			// the server closes the TCP connection first (RFC 6455 §7.1.1).
			// If our close frame is still queued behind data, the two
			// closes crossed: it goes out first, then the FIN, and the
			// peer's close of TCP ends it.
			return c.closeAfterOurs()
		}
		// The peer closes first: echo its code (1000 if it sent none)
		// after what is already queued. Once all of it is in the kernel,
		// flush half-closes the socket (the peer then closes, and gnet
		// sees EOF); close at once if that has already happened.
		echo := code
		if code == codec.StatusNoStatusRcvd {
			echo = codec.StatusNormalClosure
		}
		c.mu.Lock()
		if c.cerr == nil { // the peer's close is what ends it
			c.cerr = &CloseError{Code: code, Reason: string(reason), Remote: true}
		}
		c.mu.Unlock()
		c.startClose(echo, "", nil, false)
		if !c.flush() && c.rflags&rShutWr != 0 {
			return gnet.Close
		}
	}
	return gnet.None
}

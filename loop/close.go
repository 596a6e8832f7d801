//go:build !windows

package loop

// The closing handshake (RFC 6455 §7): our close frame queued after the
// data, the peer's answered, failures, and the close timeout.

import (
	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// closeAfterOurs is the answer to the peer's close frame once ours is
// queued: close the TCP connection once everything we queued, our close
// frame last, is in the kernel and the write side is shut down (gnet's
// close would drop what its own buffer still holds); until then flush, and
// the peer, having our close frame, closes TCP itself. CloseTimeout covers
// a peer that stops reading.
func (c *Conn) closeAfterOurs() gnet.Action {
	if c.rflags&rShutWr == 0 {
		c.flush() // OnTraffic flushes again and keeps a backlog polled
	}
	if c.rflags&rShutWr != 0 {
		return gnet.Close
	}
	return gnet.None
}

// fail fails the connection (RFC 6455 §7.1.7): the close frame carrying
// err's code follows what the application had already queued (answers to
// earlier messages still go out), except for a slow consumer, whose queue
// is dropped; nothing more is read.
func (c *Conn) fail(err error) {
	if c.rflags&rFailed != 0 || c.state >= stateClosed {
		return
	}
	c.rflags |= rFailed
	c.rflags &^= rInFrame | rFin
	if rd := c.rd; rd != nil {
		if rd.msg != nil {
			msgPool.Put(rd.msg)
			rd.msg = nil
		}
		c.unreserve()
		rd.stream.Reset() // nothing more is validated; the reader may go
	}
	if err == ErrSlowConsumer {
		c.ls.stats.slowClosed.Add(1)
	}
	c.startClose(closeCode(err), err.Error(), err, err == ErrSlowConsumer)
}

// startClose queues our close frame (unless one is queued already) and
// moves an open connection to the closing state. Event-loop only.
func (c *Conn) startClose(code codec.StatusCode, reason string, cause error, drop bool) {
	c.mu.Lock()
	if c.wflags&wCloseQ == 0 {
		c.queueCloseLocked(code, reason, drop)
	}
	c.mu.Unlock()
	c.enterClosing(cause)
}

// enterClosing records how the connection is closing and arms the close
// timeout. Event-loop only.
func (c *Conn) enterClosing(cause error) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.mu.Lock()
	if c.cerr.Err == nil {
		c.cerr.Err = cause
	}
	c.mu.Unlock()
	c.mark = c.ls.clock() + c.ls.srv.closeTicks + 1 // +1: never early
	c.ls.reschedule(c)
}

// Close starts the closing handshake with code and reason (at most 123
// bytes): the close frame goes out after the data already queued, and the
// TCP connection is closed when the peer answers or after CloseTimeout.
// A code that may not be sent on the wire (RFC 6455 §7.4) is sent as 1011,
// code 0 as a close frame without a code (the peer reads 1005), and a
// reason that is not UTF-8 is left out; OnClose's CloseError holds what
// was sent. Safe from any goroutine; closing twice is a no-op.
func (c *Conn) Close(code codec.StatusCode, reason string) error {
	if len(reason) > codec.MaxControlPayload-2 {
		return ErrControlTooLong
	}
	// No message is delivered after Close, even while its frame waits
	// behind the deliveries decided before it (as WriteMessage's do).
	c.mu.Lock()
	c.wflags |= wCloseCalled
	c.mu.Unlock()
	if err := c.ls.enqueue(delivery{kind: dClose, c: c, code: code, topic: reason}, true); err != errNotBusy {
		return err
	}
	return c.queueClose(code, reason)
}

// queueClose queues our close frame after the data queued, unless one is
// queued already.
func (c *Conn) queueClose(code codec.StatusCode, reason string) error {
	c.mu.Lock()
	if c.wflags&(wCloseQ|wClosed) != 0 {
		c.mu.Unlock()
		return nil
	}
	c.queueCloseLocked(code, reason, false)
	c.unlockAndFlush()
	return nil
}

// queueCloseLocked appends our close frame after the queued data (or in
// place of it when drop is set: a failing connection sends nothing more).
func (c *Conn) queueCloseLocked(code codec.StatusCode, reason string, drop bool) {
	if drop {
		c.wflags &^= wStaged
		c.q.discard(c.index())
	}
	c.unstageLocked()
	var p [codec.MaxControlPayload]byte
	payload := codec.AppendClose(p[:0], code, reason)
	b := c.q.buf()
	b.B = codec.AppendFrame(b.B, codec.Header{Fin: true, OpCode: codec.OpClose}, payload)
	c.wflags |= wCloseQ
	if c.cerr == nil {
		// Record what goes on the wire: AppendClose sends 1011 for a code
		// that may not be sent, no payload (1005 for the peer) for 0, and
		// drops a reason that is not UTF-8 or cuts a long one.
		sent, why, _ := codec.ParseClose(payload)
		if reason != string(why) {
			reason = string(why)
		}
		c.cerr = &CloseError{Code: sent, Reason: reason}
	}
}

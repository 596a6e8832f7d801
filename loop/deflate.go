//go:build !windows

package loop

import (
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// permessage-deflate (RFC 7692) in the loop.
//
// Compression happens on the event loop, with the loop's one Compressor
// (a flate.Writer of ~0.8 MB per loop, none per connection): WriteMessage,
// which may run on any goroutine, queues a deflate connection's message
// as an unfragmented frame marked with RSV2 (a bit never negotiated, so
// never sent), and flush compresses marked frames as it hands them to gnet.
// That keeps the Compressor and the connection's History single-threaded
// and in send order, without a lock or a pool of Writers.
//
// Per connection: Params (5 bytes, in padding of Conn) and, only with
// context takeover, a deflateState. Without takeover a deflate connection
// costs exactly what a plain one does.

// deflateState is a connection's context-takeover memory.
type deflateState struct {
	send deflate.History // what we sent compressed (server takeover); released when idle
	recv deflate.History // what the client sent (client takeover); kept for life
	used uint32          // tick of the last message compressed with send
	// The stream tracking the connection, if any: see stream.
	sh       *stream
	from, at int64
}

// rsvDeflate marks a queued message that flush must compress.
const rsvDeflate = codec.Rsv2

var zbufPool bytebufferpool.Pool // compressed message scratch

func (ls *loopState) compressor() *deflate.Compressor {
	if ls.comp == nil {
		// The Config was validated by NewServer.
		ls.comp, _ = deflate.NewCompressor(ls.srv.opts.Deflate)
	}
	return ls.comp
}

func (ls *loopState) decompressor() *deflate.Decompressor {
	if ls.dec == nil {
		ls.dec = deflate.NewDecompressor()
	}
	return ls.dec
}

// negotiate answers a permessage-deflate offer, if deflate is on and the
// client made one; it returns the Sec-WebSocket-Extensions value to send,
// appended to dst.
func (c *Conn) negotiate(dst, scratch []byte) []byte {
	cfg := c.ls.srv.opts.Deflate
	if cfg == nil {
		return dst
	}
	offers := c.rd.req.AppendExtensions(scratch[:0])
	if len(offers) == 0 {
		return dst
	}
	resp, p, ok := deflate.Negotiate(dst, offers, cfg)
	if !ok {
		return dst
	}
	c.dparams = p
	c.rflags |= rDeflate
	c.mu.Lock()
	c.wflags |= wDeflate
	c.mu.Unlock()
	return resp
}

// takeover returns the connection's takeover state, allocating it.
func (c *Conn) takeover() *deflateState {
	m := c.m()
	if m.dfl == nil {
		m.dfl = new(deflateState)
	}
	return m.dfl
}

// sendHistory returns the History for the next message sent with server
// context takeover and marks it used now. Event-loop only.
func (c *Conn) sendHistory() *deflate.History {
	d := c.takeover()
	d.used = c.ls.wheel.now
	return &d.send
}

// historyDue moves c to its History's release deadline if that comes
// before the connection's next one (a History just started). flush calls
// it after compressing, and a broadcast after its walk of the wheel: it
// must not run inside wheel.each, which would meet c again in its new slot
// (and deliver the broadcast twice). Event-loop only.
func (c *Conn) historyDue() {
	m := c.more()
	if m == nil || m.dfl == nil || m.dfl.send.Len() == 0 && m.dfl.sh == nil || c.state != stateOpen {
		return
	}
	if due := m.dfl.used + c.ls.srv.historyTicks + 1; due < c.due {
		c.ls.wheel.remove(c)
		c.ls.wheel.add(c, due)
	}
}

// inflate decompresses a whole compressed message and delivers it.
func (c *Conn) inflate(op codec.OpCode, payload []byte) {
	var hist *deflate.History
	if c.dparams.ClientContextTakeover {
		hist = &c.takeover().recv
	}
	ls := c.ls
	o := &ls.srv.opts
	lim := deflate.Limit{Size: int(o.MaxMessageSize), Ratio: o.InflateRatio, Floor: inflateFloor}
	out, err := ls.decompressor().AppendDecompressLimit(ls.inflated[:0], payload, lim, c.dparams, hist)
	ls.inflated = out[:0]
	if err == nil && op == codec.OpText {
		var v codec.UTF8
		if !v.Write(out) || !v.Complete() {
			err = codec.ErrInvalidUTF8
		}
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.deliver(op, out)
}

// inflateFloor is what a compressed message may inflate to whatever its
// size: InflateRatio binds only above it (4 KiB inflate in ~0.7 µs).
const inflateFloor = 4 << 10

// compressFrames rewrites the frames in chunk for the wire: messages
// marked by WriteMessage are compressed (or sent as they are when that
// does not pay) and fragmented; other frames are copied. It returns the
// buffer holding the result, which the caller puts back in zbufPool.
// Event-loop only.
func (c *Conn) compressFrames(chunk []byte) *bytebufferpool.ByteBuffer {
	ls := c.ls
	frag := ls.srv.opts.FragmentSize
	out := zbufPool.Get()
	z := zbufPool.Get()
	for off := 0; off < len(chunk); {
		h, n, _ := codec.ParseHeader(chunk[off:]) // our own frames: valid
		end := off + n + int(h.Length)
		if h.Rsv != rsvDeflate {
			out.B = append(out.B, chunk[off:end]...)
			off = end
			continue
		}
		msg := chunk[off+n : end]
		off = end
		var hist *deflate.History
		if c.dparams.ServerContextTakeover {
			hist = c.sendHistory()
		}
		var ok bool
		if z.B, ok = ls.compressor().AppendCompress(z.B[:0], msg, c.dparams, hist); ok {
			out.B = appendMessage(out.B, h.OpCode, codec.Rsv1, z.B, frag)
		} else {
			out.B = appendMessage(out.B, h.OpCode, 0, msg, frag)
		}
	}
	zbufPool.Put(z)
	c.historyDue()
	return out
}

// historyIdle is how long a connection keeps its send History.
func historyIdle(cfg *deflate.Config) time.Duration {
	if cfg == nil || cfg.HistoryIdle == 0 {
		return deflate.DefaultHistoryIdle
	}
	return cfg.HistoryIdle
}

// releaseIdle frees the send History of a connection that has not sent a
// compressed message for idle ticks; its next message simply starts without
// history (output that refers to no history decodes whatever the peer's
// window holds). A connection tracked by a stream leaves it: it holds no
// reference to the stream's History then, and has no History deadline
// left. The receive History (client takeover) is never released.
func (c *Conn) releaseIdle(now, idle uint32) {
	m := c.more()
	if m == nil || m.dfl == nil || now-m.dfl.used < idle {
		return
	}
	m.dfl.send.Release()
	m.dfl.sh = nil
	if !c.dparams.ClientContextTakeover {
		m.dfl = nil
		c.dropExt()
	}
}

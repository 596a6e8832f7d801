package deflate

// History is the context takeover state of one direction of one connection:
// the last bytes of the messages that went through the compressor (server
// side) or came out of the decompressor (client side). It is the whole
// per-connection cost of context takeover; there is no flate.Writer or
// flate.Reader per connection.
//
// The zero History is empty and holds no memory. The buffer is allocated on
// the first compressed message, at its final size (Params.HistoryBits on the
// send side, Params.ClientMaxWindowBits on the receive side), and never grows.
// A History belongs to one connection and one event loop; it is not safe for
// concurrent use.
type History struct {
	buf []byte // len ≤ cap; cap is the size once allocated
}

// Len returns the number of bytes held.
func (h *History) Len() int { return len(h.buf) }

// Release frees the buffer of a send-side History (for example when the
// connection has been idle for a while). The next message is then compressed
// without history, which any peer can decode: a DEFLATE block that refers to
// nothing before it is valid in whatever window the peer keeps. Releasing
// therefore costs only compression ratio, for one message.
//
// Release is also the way to stay correct when a message that AppendCompress
// compressed with this History is not sent after all (dropped for a slow
// consumer): the peer's window then lacks that message, so the next one must
// not refer to it.
//
// Never release a receive-side History (client context takeover): the
// client may refer to any of it in its next message.
func (h *History) Release() { h.buf = nil }

// Add appends msg to a send-side History as if it had been compressed with
// it. It is for broadcasts: compress a message once with the zero Params and
// a nil History, send that frame to every connection, and Add the message to
// the History of each connection with server context takeover. Add only
// messages that were sent compressed (RSV1 set): an uncompressed message
// does not enter the peer's window.
func (h *History) Add(msg []byte, p Params) { h.add(msg, p.historySize()) }

// add appends p, keeping the last size bytes.
func (h *History) add(p []byte, size int) {
	if cap(h.buf) != size {
		if len(p) == 0 {
			return
		}
		old := h.buf
		h.buf = make([]byte, 0, size)
		if len(old) > 0 {
			h.add(old, size)
		}
	}
	if len(p) >= size {
		h.buf = append(h.buf[:0], p[len(p)-size:]...)
		return
	}
	if keep := size - len(p); len(h.buf) > keep {
		n := copy(h.buf, h.buf[len(h.buf)-keep:])
		h.buf = h.buf[:n]
	}
	h.buf = append(h.buf, p...)
}

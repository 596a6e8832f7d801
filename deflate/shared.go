package deflate

// Compression shared by many connections: one History stands for the
// windows of every connection that has inflated the same messages (see
// package loop, shared streams).

// Bytes returns the bytes the History holds, oldest first. The slice is
// the History's own buffer: it is valid until the next change to h and
// must not be modified.
func (h *History) Bytes() []byte { return h.buf }

// AppendCompressShared is AppendCompress for a message compressed once for
// many connections whose windows all end with the bytes of h (p must have
// ServerContextTakeover set, and h must not be nil). Its output is sent to
// all of them, so the per-message thresholds that save per-connection
// compression time do not apply: messages of min bytes or more are
// compressed, whatever their size (min 0: all). msg is added to h if and
// only if ok is true.
func (c *Compressor) AppendCompressShared(dst, msg []byte, p Params, h *History, min int) (_ []byte, ok bool) {
	plain, hist := c.minPlain, c.minHist
	c.minPlain, c.minHist = min, min
	dst, ok = c.AppendCompress(dst, msg, p, h)
	c.minPlain, c.minHist = plain, hist
	return dst, ok
}

// AppendStored appends msg as a permessage-deflate payload made of stored
// (uncompressed) blocks, RFC 1951 §3.2.4, without the 00 00 ff ff tail: a
// compressed message (RSV1 set) that costs no compression time and 5 bytes
// per 65,535 of msg plus 1. Inflating it appends msg to the peer's window
// like any other compressed message; an uncompressed message (RSV1 clear)
// does not.
func AppendStored(dst, msg []byte) []byte {
	for len(msg) > 0 {
		n := min(len(msg), 0xffff)
		dst = append(dst, 0x00, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, msg[:n]...)
		msg = msg[n:]
	}
	// What is left of the sync flush's empty stored block once its
	// 00 00 ff ff is removed: the block header byte.
	return append(dst, 0x00)
}

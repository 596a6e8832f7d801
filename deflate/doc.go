// Package deflate implements the permessage-deflate WebSocket extension of
// RFC 7692 for an event-loop server: offer parsing and negotiation, and
// message compression and decompression that keep no compression state per
// connection unless context takeover is asked for, and then only a small
// History.
//
// It depends on the standard library and github.com/klauspost/compress/flate
// only.
//
// # Costs
//
// A flate.Writer costs 0.8–1.4 MB and a flate reader 36 KB, so there is
// none per connection: each event loop owns one Compressor and one
// Decompressor, used for all its connections one message at a time, reset
// for each message, without locks. A connection stores its Params (five
// bytes) and, only with context takeover, a History per direction. With the
// default Config the answer is
//
//	permessage-deflate; server_no_context_takeover; client_no_context_takeover
//
// and a connection holds no compression memory at all. With
// Config.ServerContextTakeover the server keeps at most 2^HistoryBits bytes
// (4 KiB by default) of what it sent, allocated on the first compressed
// message and freed by History.Release when the connection goes idle.
//
// # Use from an event loop
//
//	// per loop
//	comp, err := deflate.NewCompressor(cfg)
//	dec := deflate.NewDecompressor()
//
//	// handshake: all Sec-WebSocket-Extensions values joined with ", "
//	ext, params, ok := deflate.Negotiate(respHeader[:0], offers, cfg)
//	// ok: send "Sec-WebSocket-Extensions: " + ext; store params in the conn
//
//	// send one message
//	payload, ok := comp.AppendCompress(buf[:0], msg, c.params, &c.sendHist)
//	if !ok {
//		payload = msg // send uncompressed, RSV1 clear
//	}
//	// else: send payload with RSV1 set on the first frame
//
//	// broadcast: compress once for everyone
//	shared, ok := comp.AppendCompress(buf[:0], msg, deflate.Params{}, nil)
//	// ok: for each deflate conn, send shared (RSV1), and if
//	// c.params.ServerContextTakeover, c.sendHist.Add(msg, c.params)
//	// (a frame compressed with the zero Params suits every window size;
//	// for a conn with ServerMaxWindowBits < 15 compress separately)
//
//	// receive: payload = the frames of a message with RSV1, joined;
//	// one inflate buffer per loop, reused for every message
//	lim := deflate.Limit{Size: maxMessage, Ratio: 64, Floor: 4 << 10}
//	msg, err := dec.AppendDecompressLimit(loopBuf[:0], payload, lim, c.params, &c.recvHist)
//	loopBuf = msg[:0] // keep the capacity, also after an error
//	// err is ErrTooLarge or ErrRatio (close 1009) or ErrCorrupt (close 1007):
//	var de deflate.Error
//	if errors.As(err, &de) {
//		closeWith(de.Code)
//	}
//
//	// idle timer
//	c.sendHist.Release()
//
// Output buffers belong to the caller: AppendCompress and AppendDecompress
// append to dst and keep no reference to it, to msg or to payload once they
// return, and they do not allocate when dst has room (see the Allocs tests).
//
// # RFC 7692 choices
//
//   - Every parameter of §7.1 is parsed; an offer with an unknown, repeated or
//     invalid parameter is declined and the next one considered.
//   - server_max_window_bits below 15 is honoured (all match distances
//     within the window), never declined; see Compressor.
//   - client_max_window_bits is answered only when offered (§7.1.2.2).
//   - Client context takeover is supported only when configured, and costs a
//     History per connection for its whole life; see
//     Config.ClientContextTakeover.
//   - Corrupt compressed data is ErrCorrupt with close code 1007; see its
//     documentation for why not 1002.
//   - Compressed messages are produced with BFINAL clear and the sync-flush
//     tail removed (§7.2.1); received ones may contain BFINAL blocks and
//     several DEFLATE streams.
package deflate

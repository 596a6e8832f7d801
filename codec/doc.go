// Package codec implements the RFC 6455 WebSocket framing layer over plain
// byte slices: frame headers, masking, the rules a stream of frames must
// follow, incremental UTF-8 validation and close frames.
//
// The package is built for an event loop. Nothing reads from an io.Reader or
// blocks: parsers take the bytes that have arrived and report how many they
// used, encoders append to a caller's buffer, and the per-connection state
// ([Stream], [UTF8]) is a few bytes. The hot path does not allocate
// (ParseHeader, AppendHeader, Mask, Stream.Next, UTF8.Write, ParseClose and
// AppendClose are checked by tests).
//
// A reader handles one frame like this:
//
//	h, n, err := codec.ParseHeader(buf) // n == 0 && err == nil: wait for more bytes
//	if err == nil && n > 0 {
//		err = stream.Next(h, &rules) // sequence, mask, RSV and size rules
//	}
//	// then, for each piece of the payload as it arrives:
//	pos = codec.Mask(piece, h.Mask, pos)
//	if stream.Op() == codec.OpText && !utf8.Write(piece) { err = codec.ErrInvalidUTF8 }
//
// Every error the package returns for bad input is a [ProtocolError] that
// carries the close code to answer with; [CloseStatus] extracts it.
//
// The masking code uses package unsafe for aligned word access; build with
// the purego tag to use a portable encoding/binary version instead.
package codec

// Package wsgate is a WebSocket gateway built as an event-loop reactor on
// gnet v2: no goroutine per connection, incremental in-place parsing of the
// upgrade request and of frames, and word-at-a-time unmasking.
//
// An idle connection costs about 0.6 KiB in all (gnet's own ~0.4 KiB and
// a 144-byte Conn; partial input and the message being assembled are held
// in pooled buffers only while incomplete), with or without
// permessage-deflate.
//
// The public server API lives in this package; the pure building blocks
// are usable on their own:
//
//   - codec: RFC 6455 frame headers, masking, UTF-8 and close frames;
//   - upgrade: an incremental HTTP/1.1 upgrade-request parser and responses;
//   - deflate: permessage-deflate (RFC 7692) negotiation and compression
//     without a compressor per connection.
package wsgate

// Package wsgate is the root of a WebSocket server module built as an
// event-loop reactor on gnet v2: no goroutine per connection, incremental
// in-place parsing of the upgrade request and of frames, and word-at-a-time
// unmasking.
//
// The module's packages:
//
//   - loop: the WebSocket server engine (Server, Conn, Handler, Options,
//     topics and slow-consumer policies); start here to serve WebSocket;
//   - codec: RFC 6455 frame headers, masking, UTF-8 and close frames;
//   - upgrade: an incremental HTTP/1.1 upgrade-request parser and responses;
//   - deflate: permessage-deflate (RFC 7692) negotiation and compression
//     without a compressor per connection.
package wsgate

// Package wsgate is a WebSocket gateway built as an event-loop reactor on
// gnet v2: no goroutine per connection, incremental in-place parsing of the
// upgrade request and of frames, and word-at-a-time unmasking.
//
// The public server API lives in this package; the pure building blocks
// are usable on their own:
//
//   - codec: RFC 6455 frame headers, masking, UTF-8 and close frames;
//   - upgrade: an incremental HTTP/1.1 upgrade-request parser and responses.
package wsgate

//go:build !windows

// Package loop is a WebSocket server (RFC 6455, with permessage-deflate of
// RFC 7692) on gnet v2 event loops: no goroutine per connection, input
// parsed in place, timers in one hashed wheel per loop.
//
// A Server is made with NewServer from a Handler and Options (the zero
// Options is usable; each field names its default and its memory cost),
// then Start listens and Shutdown stops it. The Handler's methods run on
// the connection's event loop and must not block.
//
// # Connections
//
// A Conn is one upgraded connection. WriteMessage, Ping and Close may be
// called from any goroutine and never block on a slow peer: they queue
// and return. What a connection has pending is bounded by
// Options.MaxPendingBytes; past it the connection is closed with 1008. An
// idle connection holds about 0.6 KiB in all (gnet's own part included):
// partial input, the message being assembled and the send queue live in
// pooled buffers only while they hold something.
//
// # Fan-out
//
// A message for many connections is framed (and compressed) once with
// Server.Prepare, then sent with Publish to the subscribers of a topic
// (Subscribe, Unsubscribe) or with BroadcastPrepared to every connection.
// A SlowPolicy says what happens to published messages for a connection
// that falls behind: disconnect it, drop the newest or the oldest, or keep
// only the latest message per key.
//
// # Order
//
// What one goroutine (or the event loop, inside a Handler method) decides
// for a connection reaches that connection in that order: WriteMessage,
// Close, Subscribe, Unsubscribe and the deliveries of Publish and
// Broadcast keep their order per connection. A reply written after
// Subscribe comes before every message published after Subscribe
// returned, and no message published before it reaches the connection
// through the topic. Pings and pongs are the exception: they go out ahead
// of queued data, at the next frame boundary.
//
// # Close codes
//
// Errors that imply a close code have a CloseCode() uint16 method
// (codec.ProtocolError, deflate.Error, ErrSlowConsumer, ErrIdle,
// ErrShutdown); the connection is closed with that code. OnClose receives
// a *CloseError with the code that was exchanged.
//
// # Platforms
//
// Linux (epoll), macOS and FreeBSD (kqueue). Windows is not supported.
package loop

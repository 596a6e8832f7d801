// Package load implements wsbench's load generator: WebSocket client
// connections driven by gnet event loops, spread over worker processes,
// with every received message verified.
//
// # Design
//
//   - No goroutine per connection. Each worker process runs a gnet client
//     with a few event loops; connections are dialled by a bounded pool of
//     goroutines (net.Dialer bound to 127.0.0.x source addresses with
//     IP_BIND_ADDRESS_NO_PORT, so each address has its own ephemeral
//     ports) and handed to gnet with Enroll. OnOpen writes the upgrade
//     request, written by hand; the 101 response is checked, including
//     Sec-WebSocket-Accept (upgrade.AppendAccept).
//   - Frames are built with codec.AppendFrame (masked word-at-a-time) from a
//     per-loop template, so sending costs one copy and one write per
//     OnTraffic. Server frames are parsed with codec.ParseHeader and
//     codec.Stream from gnet's buffer where they lie; only a split header
//     (up to 14 bytes) or control frame (up to 125 bytes) is copied.
//   - Every message carries a sequence number, a send timestamp and its
//     length in a 24-byte ASCII header, then a filler: fixed for echo; for
//     fanout, trade ticks cut from a 1 MiB deterministic text at an offset
//     that moves with the sequence, so that no message repeats a recent
//     one. The receiver checks the filler bytes against the expected text
//     as they arrive, without buffering uncompressed messages, then the
//     header, the sequence and the length. Only complete, correct
//     messages count.
//   - With permessage-deflate, the client offers no context takeover in
//     either direction. It sends each message as one self-contained DEFLATE
//     stream: a stored block with the header, then the filler compressed
//     once at start (so sending costs no compression; the fanout publisher
//     compresses each tick), and inflates the server's compressed messages
//     with one klauspost flate reader per loop.
//   - With Config.Takeover the offer leaves out server_no_context_takeover.
//     When the server keeps its context, each connection keeps its window:
//     the last 2^server_max_window_bits bytes it inflated (32 KiB when the
//     server names no size), in a buffer of at most the window plus a
//     quarter of it (or one message, if larger), allocated on the first
//     compressed message; the loop's reader is reset with the window as
//     dictionary for every message. A compressed message that cannot be
//     inflated fails the connection, whose window is then lost. A server
//     that answers server_no_context_takeover is read as without takeover.
//   - Connections are spread over worker processes (at most 8,000 each, for
//     the 20,000 open-file limit) that the coordinator (Run) re-executes
//     from its own binary (IsWorker, WorkerMain) and drives over pipes: a
//     JSON spec, then the commands run, measure, stop and close; the workers
//     answer with JSON events (progress, ready, stopped, result) carrying
//     counters and HDR-style histograms (Histogram).
//   - Every wait is bounded: dialling by count, handshakes by a timeout
//     and a sweeper, the closing handshake by 3 s, each worker by a
//     lifetime, the whole run by Config.Timeout.
//
// # Scenarios
//
// idle opens connections at a bounded rate and holds them; echo keeps
// InFlight messages in flight per connection; fanout has one publisher
// send "BCAST <message>" at PubRate, which the server must deliver to
// every connection; storm churns connections (dial, upgrade, close);
// gateway speaks Centrifugo's client protocol (JSON): every connection
// connects with a JWT and subscribes to one channel, the coordinator
// publishes through the server HTTP API, and every push is checked (data
// bytes, contiguous channel offsets). The server's memory and CPU come
// from its /stats JSON or /proc/<pid>.
package load

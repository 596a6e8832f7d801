//go:build !windows

package loop

import (
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"time"

	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/upgrade"
)

// Options configures a Server; it is the only configuration. The zero
// value is usable: every zero field takes the default written beside it,
// and each field says what it costs in memory ("no memory" when it costs
// none). NewServer copies the Options; the caller's struct is never
// modified.
type Options struct {
	// NumLoops is the number of event loops (threads). Default:
	// runtime.NumCPU(). Each loop costs one 64 KiB read buffer.
	NumLoops int

	// NoReusePort turns SO_REUSEPORT off. By default every loop has its own
	// listener on Linux and the kernel spreads accepts across them. No
	// memory.
	NoReusePort bool

	// Logger receives server and gnet logs. Default: slog.Default(). No
	// memory.
	Logger *slog.Logger

	// HandshakeTimeout bounds the time from accept to a complete upgrade
	// request; a slower client gets 408 and is closed. Default 5 s. Memory:
	// a connection in its handshake holds a pooled request parser and its
	// partial request (at most Upgrade's limits) for at most this long.
	HandshakeTimeout time.Duration

	// PingInterval: a connection that has received nothing for this long is
	// sent a ping. Default 30 s, below the 60 s read timeout nginx applies
	// to proxied connections, so idle connections survive a reverse proxy.
	// Negative disables pings. No memory (one timing wheel per loop).
	PingInterval time.Duration

	// IdleTimeout: a connection that has received nothing (not even a pong)
	// for this long is closed with 1001. Default 2×PingInterval (60 s).
	// Negative disables it. No memory.
	IdleTimeout time.Duration

	// CloseTimeout bounds the closing handshake: after our close frame the
	// TCP connection is dropped if the peer has not answered. Default 3 s.
	// No memory.
	CloseTimeout time.Duration

	// MaxMessageSize is the largest message (sum of its frames' payloads)
	// accepted; a larger one is refused with 1009 as soon as its header
	// announces it, before any payload is buffered. Default 1 MiB. Memory:
	// a connection receiving a fragmented message, or one that arrives in
	// several reads, holds up to this much in a pooled buffer until it is
	// complete.
	MaxMessageSize int64

	// MessageBudget bounds, across all connections, the bytes held for
	// messages that arrive in more than one read (a whole message that
	// arrives at once is handled in place and holds nothing). Each frame of
	// such a message reserves its announced length when its header
	// arrives, until the message is complete; a frame that finds no room
	// fails its connection with 1013 (Try Again Later) before any payload is
	// buffered. What the reservations pin is at most twice the budget
	// (buffers grow by doubling). Default 64 MiB.
	MessageBudget int64

	// InflateRatio bounds the work a compressed message can cause: it may
	// inflate to at most InflateRatio times its compressed size (and never
	// past MaxMessageSize; messages up to 4 KiB inflated are always
	// allowed), or the connection is failed with 1009. Real text compresses
	// 1.4–3.5× on its own; zeros inflate at ~6 GB/s, so at 64 a bomb costs
	// ~20 ns of inflating per byte received, about what real JSON costs.
	// Default 64; negative: no ratio limit. Raise it where clients send
	// highly redundant messages: a snapshot of 1,000 identical JSON quotes
	// compresses 236× on its own, and with client context takeover
	// repeated messages compress further still.
	InflateRatio int

	// MessageTimeout bounds how long input may stay incomplete: a message,
	// frame header or control frame begun must be finished within it, or
	// the connection is failed with 1008. Bytes that trickle in keep a
	// connection from idling out, but not past this. Default 30 s;
	// negative disables it.
	MessageTimeout time.Duration

	// MaxPendingBytes bounds the bytes queued for sending to one connection
	// (ours plus gnet's outbound buffer). A write that would exceed it fails
	// with ErrSlowConsumer and the connection is closed with 1008. It is
	// also the upper bound of a slow connection's send memory.
	// Default 4 MiB; it must exceed MaxMessageSize.
	MaxPendingBytes int

	// HighWaterBytes is the pending-bytes level above which a published
	// message is handled by the connection's SlowPolicy. Default
	// MaxPendingBytes/4; at most MaxPendingBytes. Memory: with a dropping
	// or conflating policy, what published messages can take in a slow
	// connection's queue.
	HighWaterBytes int

	// SendBudget bounds, across all connections, the bytes held for peers
	// that do not keep up. Each connection may hold 64 KiB (queued for it
	// and in gnet's outbound buffer) outside the budget; what it holds
	// beyond that, as of its last flush, is charged to the budget. While
	// the budget is spent, a published message that would take a
	// connection the kernel did not drain at its last flush beyond its
	// 64 KiB is handled as above HighWaterBytes, by the connection's
	// SlowPolicy (SlowDisconnect closes it with 1008). Peers that keep up
	// are not affected; WriteMessage is bounded by MaxPendingBytes alone.
	// Default 256 MiB; negative: no budget. Memory: what peers that stop
	// reading can make the server hold for sending is at most this plus
	// 64 KiB per connection, plus what one delivery round adds to each
	// before its flush.
	SendBudget int64

	// SlowPolicy is the default policy for published messages to slow
	// connections (Conn.SetSlowPolicy overrides it). Default SlowDisconnect.
	// No memory (SlowConflate: a key index per slow connection while it
	// has keyed messages queued).
	SlowPolicy SlowPolicy

	// SocketSendBuffer sets SO_SNDBUF of accepted sockets, in bytes; 0
	// keeps the kernel's (autotuned, up to net.ipv4.tcp_wmem's maximum).
	// A smaller buffer makes a stalled peer show up in PendingBytes, and
	// so in the slow-consumer policies, sooner. Memory: kernel memory, up
	// to this per connection with unsent data.
	SocketSendBuffer int

	// FragmentSize splits larger outgoing messages into frames of this many
	// payload bytes, so pings and pongs can go out between them.
	// Default 64 KiB. No memory.
	FragmentSize int

	// MaxConns is the number of upgraded connections above which new
	// upgrades are answered 503. Default 0: no limit. Memory: bounds the
	// total, about 0.6 KiB per idle connection.
	MaxConns int

	// MaxTCPConns bounds the TCP connections held at once, in their
	// handshake or upgraded; one accepted beyond it is closed at once,
	// before anything is read from it. It is what keeps the process below
	// its descriptor limit, which gnet cannot survive reaching. Default:
	// the soft RLIMIT_NOFILE when NewServer is called, less the
	// descriptors open then, the engine's own (four per loop; plus a full
	// listen backlog with NoReusePort, or with several loops outside
	// Linux), and FDReserve.
	MaxTCPConns int

	// FDReserve is the number of descriptors the default MaxTCPConns leaves
	// for what the process opens after NewServer: admin and API
	// connections (bound them), broker connections, files. Default 256, or
	// a quarter of the limit if that is smaller.
	FDReserve int

	// MaxHandshakes bounds the connections accepted but not yet upgraded;
	// one accepted beyond it is closed at once, so peers
	// that open sockets and never finish the upgrade cannot take every
	// place. Memory: each holds at most its pooled request buffer (see
	// Upgrade) until HandshakeTimeout. Default 1024, or half of
	// MaxTCPConns if that is smaller.
	MaxHandshakes int

	// Upgrade holds the request size limits (default 8 KiB of header,
	// 64 header lines, 4 KiB request line). Memory: a connection in its
	// handshake buffers at most the header limit.
	Upgrade upgrade.Config

	// AllowedOrigins lists the Origin values (e.g. "https://example.com")
	// accepted besides the same origin. "*" accepts every origin. A request
	// without Origin (a non-browser client) is always accepted; any other
	// origin gets 403 (cross-site WebSocket hijacking). No memory per
	// connection.
	AllowedOrigins []string

	// TrustedProxies lists the proxies (addresses as /32 or /128 prefixes,
	// or networks) whose forwarding headers are believed. For a request
	// whose TCP peer is in one of them, the client is the nearest hop of
	// Forwarded (RFC 7239) or, without it, of X-Forwarded-For that is not
	// itself a trusted proxy (see upgrade.Request.Forwarded): it becomes
	// Conn.RemoteAddr (port 0 when the proxy recorded none), and the
	// origin check compares the Origin with the forwarded host
	// (X-Forwarded-Host or the element's host=) instead of Host, and its
	// scheme with the forwarded proto (X-Forwarded-Proto or proto=), when
	// the proxy sent them. A hop that is not an IP address leaves
	// RemoteAddr at the proxy's address. From any other peer these headers
	// are ignored, so a client cannot choose its address. Default: none.
	// No memory per connection beyond the address.
	TrustedProxies []netip.Prefix

	// Authorize, if set, runs after the protocol checks and the origin
	// check. A non-nil error rejects the upgrade: an upgrade.RejectError
	// is answered with its status and reason; any other error with 403
	// and a generic reason (its text is logged at debug level, never sent).
	// The returned value is attached to the connection (Conn.Value): its
	// memory is the connection's. The request is valid only during the
	// call.
	Authorize func(r *upgrade.Request) (value any, err error)

	// Deflate turns permessage-deflate (RFC 7692) on with this policy; nil
	// (the default) leaves it off. The zero deflate.Config answers offers
	// with server_no_context_takeover and client_no_context_takeover: no
	// compression memory per connection, one ~0.8 MB flate.Writer and one
	// ~36 KB reader per event loop, created on first use. With
	// ServerContextTakeover a connection keeps up to 2^HistoryBits bytes
	// (4 KiB) of history, freed after deflate.Config.HistoryIdle (30 s)
	// without compressed messages.
	Deflate *deflate.Config

	// Protocols are the subprotocols the server speaks, in no particular
	// order: the first one the client offers that is listed is selected.
	// No memory per connection (one byte in Conn).
	Protocols []string
}

// Defaults.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultCloseTimeout     = 3 * time.Second
	DefaultMaxMessageSize   = 1 << 20
	DefaultMaxPendingBytes  = 4 << 20
	DefaultFragmentSize     = 64 << 10
	DefaultFDReserve        = 256
	DefaultMessageBudget    = 64 << 20
	DefaultSendBudget       = 256 << 20
	DefaultInflateRatio     = 64
	DefaultMessageTimeout   = 30 * time.Second
	DefaultMaxHandshakes    = 1024
)

// normalize returns a copy of o with the defaults filled in, or an error
// naming the first field that is out of range.
func (o Options) normalize() (Options, error) {
	if o.NumLoops == 0 {
		o.NumLoops = runtime.NumCPU()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 2 * DefaultPingInterval
		if o.PingInterval > 0 {
			o.IdleTimeout = 2 * o.PingInterval
		}
	}
	if o.CloseTimeout == 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.MessageTimeout == 0 {
		o.MessageTimeout = DefaultMessageTimeout
	}
	switch {
	case o.InflateRatio == 0:
		o.InflateRatio = DefaultInflateRatio
	case o.InflateRatio < 0:
		o.InflateRatio = 0 // deflate.Limit: no ratio bound
	}
	if o.MessageBudget == 0 {
		o.MessageBudget = DefaultMessageBudget
	}
	switch {
	case o.SendBudget == 0:
		o.SendBudget = DefaultSendBudget
	case o.SendBudget < 0:
		o.SendBudget = 0 // no budget
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
		if int64(o.MaxPendingBytes) <= o.MaxMessageSize {
			o.MaxPendingBytes = int(2*o.MaxMessageSize + 1<<16)
		}
	}
	if o.HighWaterBytes == 0 {
		o.HighWaterBytes = o.MaxPendingBytes / 4
	}
	if o.FragmentSize == 0 {
		o.FragmentSize = DefaultFragmentSize
	}
	switch {
	case o.NumLoops < 0 || o.NumLoops > 256:
		return o, errors.New("loop: NumLoops must be 1..256")
	case o.HandshakeTimeout < 0 || o.CloseTimeout < 0:
		return o, errors.New("loop: HandshakeTimeout and CloseTimeout must be positive")
	case o.MaxMessageSize < 0:
		return o, errors.New("loop: MaxMessageSize must be positive")
	case int64(o.MaxPendingBytes) <= o.MaxMessageSize:
		return o, errors.New("loop: MaxPendingBytes must exceed MaxMessageSize")
	case o.MaxPendingBytes > 1<<30:
		return o, errors.New("loop: MaxPendingBytes must be at most 1 GiB")
	case len(o.Protocols) > 255:
		return o, errors.New("loop: at most 255 Protocols")
	case o.HighWaterBytes < 0 || o.HighWaterBytes > o.MaxPendingBytes:
		return o, errors.New("loop: HighWaterBytes must be within MaxPendingBytes")
	case o.SlowPolicy > SlowConflate:
		return o, errors.New("loop: unknown SlowPolicy")
	case o.FragmentSize < 125:
		return o, errors.New("loop: FragmentSize must be at least 125")
	case o.MaxConns < 0:
		return o, errors.New("loop: MaxConns must not be negative")
	case o.MessageBudget < 0:
		return o, errors.New("loop: MessageBudget must not be negative")
	case o.MaxTCPConns < 0 || o.FDReserve < 0 || o.MaxHandshakes < 0:
		return o, errors.New("loop: MaxTCPConns, FDReserve and MaxHandshakes must not be negative")
	}
	if o.Deflate != nil {
		if err := o.Deflate.Validate(); err != nil {
			return o, err
		}
		d := *o.Deflate
		o.Deflate = &d
	}
	o.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	trusted := make([]netip.Prefix, 0, len(o.TrustedProxies))
	for _, p := range o.TrustedProxies {
		if !p.IsValid() {
			return o, errors.New("loop: TrustedProxies holds an invalid prefix")
		}
		trusted = append(trusted, p.Masked())
	}
	o.TrustedProxies = trusted
	o.Protocols = append([]string(nil), o.Protocols...)
	return o, nil
}

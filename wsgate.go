package wsgate

import (
	"log/slog"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/upgrade"
)

// Types users touch, defined in the packages that implement them.
type (
	// Server is a running (or ready) gateway; see NewServer.
	Server = loop.Server
	// Conn is one WebSocket connection. Each method says whether it is
	// safe from any goroutine or event-loop only.
	Conn = loop.Conn
	// Handler receives connection events on the connection's event loop.
	Handler = loop.Handler
	// Options configures a Server; every field documents its default.
	Options = loop.Options
	// CloseError is what Handler.OnClose receives.
	CloseError = loop.CloseError
	// Request is the upgrade request, as seen by Options.Authorize.
	Request = upgrade.Request
	// RejectError rejects an upgrade with an HTTP status.
	RejectError = upgrade.RejectError
	// OpCode is a frame opcode.
	OpCode = codec.OpCode
	// StatusCode is a close status code.
	StatusCode = codec.StatusCode
	// PreparedMessage is a message framed (and compressed) once for many
	// connections; see Server.Prepare and Server.Publish.
	PreparedMessage = loop.PreparedMessage
	// SlowPolicy says what happens to published messages for a slow
	// connection.
	SlowPolicy = loop.SlowPolicy
	// Stats are the server's fan-out counters.
	Stats = loop.Stats
)

// Slow-consumer policies for published messages.
const (
	SlowDisconnect = loop.SlowDisconnect
	SlowDropNewest = loop.SlowDropNewest
	SlowDropOldest = loop.SlowDropOldest
	SlowConflate   = loop.SlowConflate
)

// Message opcodes.
const (
	OpText   = codec.OpText
	OpBinary = codec.OpBinary
)

// Close codes applications commonly send (RFC 6455 §7.4.1).
const (
	StatusNormalClosure   = codec.StatusNormalClosure
	StatusGoingAway       = codec.StatusGoingAway
	StatusPolicyViolation = codec.StatusPolicyViolation
	StatusInternalError   = codec.StatusInternalError
	StatusTryAgainLater   = codec.StatusTryAgainLater
)

// Errors returned by Conn methods and carried by CloseError.Err.
var (
	ErrClosed       = loop.ErrClosed
	ErrSlowConsumer = loop.ErrSlowConsumer
	ErrIdle         = loop.ErrIdle
	ErrShutdown     = loop.ErrShutdown
	ErrCloseTimeout = loop.ErrCloseTimeout
	ErrNoPeerClose  = loop.ErrNoPeerClose
)

// CloseStatus returns the close code carried by err, the error OnClose
// receives.
func CloseStatus(err error) (StatusCode, bool) { return loop.CloseStatus(err) }

// Option sets a field of Options.
type Option func(*Options)

// WithOptions replaces all options at once.
func WithOptions(o Options) Option { return func(p *Options) { *p = o } }

// WithLoops sets the number of event loops (default: one per CPU).
func WithLoops(n int) Option { return func(o *Options) { o.NumLoops = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithTimeouts sets the handshake timeout (default 5 s), ping interval
// (30 s) and idle timeout (2× ping interval). Zero keeps a default,
// negative disables pings or the idle timeout.
func WithTimeouts(handshake, ping, idle time.Duration) Option {
	return func(o *Options) {
		o.HandshakeTimeout, o.PingInterval, o.IdleTimeout = handshake, ping, idle
	}
}

// WithMaxMessageSize sets the largest message accepted (default 1 MiB).
func WithMaxMessageSize(n int64) Option { return func(o *Options) { o.MaxMessageSize = n } }

// WithMaxPendingBytes bounds the bytes queued per connection (default 4 MiB).
func WithMaxPendingBytes(n int) Option { return func(o *Options) { o.MaxPendingBytes = n } }

// WithMaxConns answers 503 to upgrades beyond n connections (default: no limit).
func WithMaxConns(n int) Option { return func(o *Options) { o.MaxConns = n } }

// WithAllowedOrigins accepts these Origin values besides the same origin.
func WithAllowedOrigins(origins ...string) Option {
	return func(o *Options) { o.AllowedOrigins = origins }
}

// WithAuthorize installs the authorization hook; see Options.Authorize.
func WithAuthorize(f func(r *Request) (any, error)) Option {
	return func(o *Options) { o.Authorize = f }
}

// WithDeflate turns permessage-deflate on with cfg (nil: off, the default);
// see Options.Deflate for the memory it costs.
func WithDeflate(cfg *deflate.Config) Option { return func(o *Options) { o.Deflate = cfg } }

// WithSlowPolicy sets the default slow-consumer policy for published
// messages and the pending-bytes level above which it applies (0: a quarter
// of MaxPendingBytes).
func WithSlowPolicy(p SlowPolicy, highWaterBytes int) Option {
	return func(o *Options) { o.SlowPolicy, o.HighWaterBytes = p, highWaterBytes }
}

// WithProtocols sets the subprotocols the server speaks.
func WithProtocols(p ...string) Option { return func(o *Options) { o.Protocols = p } }

// NewServer returns a server for h, configured by opts, not yet listening:
// call Start, and Shutdown to stop it.
func NewServer(h Handler, opts ...Option) (*Server, error) {
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	return loop.NewServer(h, o)
}

// Serve listens on addr ("host:port") and serves h until the server stops.
func Serve(addr string, h Handler, opts ...Option) error {
	s, err := NewServer(h, opts...)
	if err != nil {
		return err
	}
	if err := s.Start(addr); err != nil {
		return err
	}
	return s.Wait()
}

// BuiltinHandler is a Handler that does nothing; embed it to implement
// only the methods you need.
type BuiltinHandler struct{}

// OnOpen does nothing.
func (BuiltinHandler) OnOpen(*Conn) {}

// OnMessage does nothing.
func (BuiltinHandler) OnMessage(*Conn, OpCode, []byte) {}

// OnClose does nothing.
func (BuiltinHandler) OnClose(*Conn, error) {}

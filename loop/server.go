//go:build !windows

package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// Handler receives a connection's events. All three methods run on the
// connection's event loop: they must not block, or every connection of
// that loop waits.
type Handler interface {
	// OnOpen is called once the upgrade has been answered.
	OnOpen(c *Conn)
	// OnMessage is called for every complete message; op is OpText or
	// OpBinary, and a text payload is valid UTF-8. payload is valid only
	// until OnMessage returns: copy it to keep it.
	OnMessage(c *Conn, op codec.OpCode, payload []byte)
	// OnClose is called once when an upgraded connection has ended; err is
	// a *CloseError.
	OnClose(c *Conn, err error)
}

// BuiltinHandler is a Handler that does nothing; embed it to implement
// only the methods you need.
type BuiltinHandler struct{}

// OnOpen does nothing.
func (BuiltinHandler) OnOpen(*Conn) {}

// OnMessage does nothing.
func (BuiltinHandler) OnMessage(*Conn, codec.OpCode, []byte) {}

// OnClose does nothing.
func (BuiltinHandler) OnClose(*Conn, error) {}

// Server is a WebSocket server on gnet event loops.
type Server struct {
	eng        engine // gnet's event handler
	opts       Options
	handler    Handler
	rules      codec.Rules // for connections without extensions
	rulesZ     codec.Rules // for connections with permessage-deflate: RSV1 allowed
	closeTicks uint32
	pingTicks  uint32
	idleTicks  uint32
	hsTicks    uint32
	msgTicks   uint32
	// a send History unused for this long is released
	historyTicks uint32
	start        time.Time

	engine   gnet.Engine
	booted   chan struct{}
	finished chan struct{} // closed when gnet.Run has returned
	runErr   error
	conns    atomic.Int64 // upgraded connections
	adm      admission    // TCP connections held, handshaking or upgraded
	msgUsed  atomic.Int64 // of Options.MessageBudget, by messages being assembled
	sendUsed atomic.Int64 // of Options.SendBudget, by connections that are behind
	shutdown atomic.Bool  // new connections are refused (StopAccepting, Shutdown)
	stopping atomic.Bool  // Shutdown was called

	mu    sync.Mutex
	loops []*loopState
	stop  chan struct{}

	zmu   sync.Mutex          // guards zcomp
	zcomp *deflate.Compressor // compresses prepared messages, once each
}

// NewServer checks opts and returns a server that is not yet listening.
func NewServer(h Handler, opts Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("loop: nil Handler")
	}
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	z := codec.Rules{Server: true, Rsv: codec.Rsv1, MaxFrameSize: o.MaxMessageSize, MaxMessageSize: o.MaxMessageSize}
	s := &Server{
		rulesZ:  z,
		opts:    o,
		handler: h,
		rules: codec.Rules{
			Server:         true,
			MaxFrameSize:   o.MaxMessageSize,
			MaxMessageSize: o.MaxMessageSize,
		},
		closeTicks:   ticks(o.CloseTimeout),
		pingTicks:    ticks(o.PingInterval),
		idleTicks:    ticks(o.IdleTimeout),
		hsTicks:      ticks(o.HandshakeTimeout),
		msgTicks:     ticks(o.MessageTimeout),
		historyTicks: ticks(historyIdle(o.Deflate)),
		booted:       make(chan struct{}),
		finished:     make(chan struct{}),
		stop:         make(chan struct{}),
	}
	s.eng.s = s
	s.adm.maxTCP, s.adm.maxHandshakes = admissionLimits(&s.opts, s.opts.NumLoops)
	return s, nil
}

// Start listens on addr ("host:port") and serves in the background. It
// returns once the listeners are bound, or with the error that stopped
// them from binding.
func (s *Server) Start(addr string) error {
	if err := portFree(addr); err != nil {
		return err
	}
	s.start = time.Now()
	go func() {
		err := gnet.Run(&s.eng, "tcp://"+addr,
			gnet.WithNumEventLoop(s.opts.NumLoops),
			gnet.WithReusePort(!s.opts.NoReusePort),
			gnet.WithReuseAddr(true),
			gnet.WithLogger(slogAdapter{s.opts.Logger}),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithSocketSendBuffer(s.opts.SocketSendBuffer),
		)
		if err == nil && !s.stopping.Load() {
			// gnet returns nil when a loop's failure (an accept error,
			// say) stopped it: the cause is in the log.
			err = ErrEngineStopped
		}
		s.runErr = err
		close(s.finished)
	}()
	select {
	case <-s.booted:
		go s.ticker()
		return nil
	case <-s.finished:
		if s.runErr == nil {
			return errors.New("loop: engine stopped during start")
		}
		return s.runErr
	}
}

// Wait blocks until the server has stopped. It returns ErrServerClosed
// after Shutdown, else the error that stopped the engine.
func (s *Server) Wait() error {
	<-s.finished
	if s.runErr == nil && s.stopping.Load() {
		return ErrServerClosed
	}
	return s.runErr
}

// Conns returns the number of upgraded connections. Safe from any goroutine.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// StopAccepting refuses new connections from now on and leaves the
// upgraded ones open: a TCP connection accepted from then on is closed at
// once, and an upgrade in progress is answered 503. An application that
// closes its connections its own way before Shutdown (spread over time,
// with a code of its protocol) calls it first, so that no connection
// arrives behind its back. Safe from any goroutine; Shutdown does it too.
func (s *Server) StopAccepting() { s.shutdown.Store(true) }

// Shutdown first stops accepting: a TCP connection accepted from then on
// is closed at once, and an upgrade in progress is refused. It then sends
// 1001 Going Away to every connection after what is already queued for
// it, waits until every connection has closed or ctx ends, and stops the
// engine. A second call is a no-op and returns nil; Wait returns
// ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.booted:
	default: // never started, or Start failed: nothing to stop
		return errors.New("loop: Shutdown of a server that is not running")
	}
	if !s.stopping.CompareAndSwap(false, true) {
		return nil
	}
	s.StopAccepting()
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, ls := range loops {
		_ = ls.el.Execute(ctx, gnet.RunnableFunc(func(context.Context) error {
			// startClose reschedules c: walk a copy, not the wheel.
			var conns []*Conn
			ls.wheel.each(func(c *Conn) { conns = append(conns, c) })
			for _, c := range conns {
				switch c.state {
				case stateOpen:
					c.startClose(codec.StatusGoingAway, "server shutting down", ErrShutdown, false)
					ls.flushConn(c)
				case stateHandshake:
					_ = ls.el.Close(c.gc)
				}
			}
			return nil
		}))
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	var err error
wait:
	for s.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("loop: shutdown: %d connections still open: %w", s.conns.Load(), ctx.Err())
			break wait
		case <-poll.C:
		}
	}
	close(s.stop)
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if e := s.engine.Stop(stopCtx); e != nil && err == nil {
		err = e
	}
	<-s.finished
	if err == nil {
		err = s.runErr
	}
	return err
}

// portFree reports an error if another socket listens on addr. With
// SO_REUSEPORT (the default) the kernel lets a second process of the same
// user bind a port that one already serves, and then splits new
// connections between the two; a plain listener without the option finds
// out instead. Port 0 (any free port) is not checked.
func portFree(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		return nil // gnet reports a malformed address
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("loop: %w", err)
	}
	return ln.Close()
}

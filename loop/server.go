package loop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/upgrade"
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

// Server is a WebSocket server on gnet event loops.
type Server struct {
	gnet.BuiltinEventEngine

	opts       Options
	handler    Handler
	rules      codec.Rules // for connections without extensions
	rulesZ     codec.Rules // for connections with permessage-deflate: RSV1 allowed
	closeTicks uint32
	pingTicks  uint32
	idleTicks  uint32
	hsTicks    uint32
	// a send History unused for this long is released
	historyTicks uint32
	start        time.Time

	engine   gnet.Engine
	booted   chan struct{}
	finished chan struct{} // closed when gnet.Run has returned
	runErr   error
	conns    atomic.Int64 // upgraded connections
	shutdown atomic.Bool

	mu    sync.Mutex
	loops []*loopState
	stop  chan struct{}

	zmu   sync.Mutex          // guards zcomp
	zcomp *deflate.Compressor // compresses prepared messages, once each
	stats struct {
		delivered, dropped, conflated, slowClosed, subs atomic.Int64
	}
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
		historyTicks: ticks(historyIdle(o.Deflate)),
		booted:       make(chan struct{}),
		finished:     make(chan struct{}),
		stop:         make(chan struct{}),
	}
	return s, nil
}

// ticks converts d to wheel ticks, rounding up; 0 for d <= 0 (disabled).
func ticks(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + tick - 1) / tick)
}

// Start listens on addr ("host:port") and serves in the background. It
// returns once the listeners are bound, or with the error that stopped
// them from binding.
func (s *Server) Start(addr string) error {
	s.start = time.Now()
	go func() {
		s.runErr = gnet.Run(s, "tcp://"+addr,
			gnet.WithNumEventLoop(s.opts.NumLoops),
			gnet.WithReusePort(!s.opts.NoReusePort),
			gnet.WithReuseAddr(true),
			gnet.WithLogger(slogAdapter{s.opts.Logger}),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithSocketSendBuffer(s.opts.SocketSendBuffer),
		)
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

// Wait blocks until the server has stopped and returns the engine's error.
func (s *Server) Wait() error {
	<-s.finished
	return s.runErr
}

// Conns returns the number of upgraded connections. Safe from any goroutine.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// OnBoot implements gnet.EventHandler.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.engine = eng
	close(s.booted)
	return gnet.None
}

// loopState is what one event loop owns: its timing wheel and the
// connections whose send queues are waiting for gnet's buffer to drain.
type loopState struct {
	srv     *Server
	el      gnet.EventLoop
	wheel   wheel
	backlog []*Conn
	comp    *deflate.Compressor   // created on first use
	dec     *deflate.Decompressor // created on first use
	topics  map[string]*topic
	touched []*Conn // connections given messages by the current drain

	inboxMu sync.Mutex
	inbox   []delivery // published messages for this loop
	spare   []delivery
	drainer gnet.Runnable
	pending atomic.Bool // a tick task is queued on the loop
	hasWork atomic.Bool // backlog is not empty
}

// loopOf returns the state of c's event loop, creating it on first use.
func (s *Server) loopOf(gc gnet.Conn) *loopState {
	el := gc.EventLoop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ls := range s.loops {
		if ls.el == el {
			return ls
		}
	}
	ls := &loopState{srv: s, el: el}
	ls.drainer = gnet.RunnableFunc(ls.drain)
	ls.wheel.now = uint32(time.Since(s.start) / tick)
	s.loops = append(s.loops, ls)
	return ls
}

// OnOpen implements gnet.EventHandler: a TCP connection was accepted.
func (s *Server) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	if s.shutdown.Load() {
		return nil, gnet.Close
	}
	ls := s.loopOf(gc)
	c := &Conn{gc: gc, ls: ls, policy: uint8(s.opts.SlowPolicy)}
	req := reqPool.Get().(*upgrade.Request)
	req.Reset(&s.opts.Upgrade)
	c.r().req = req
	c.lastRead = ls.wheel.now
	c.closeAt = ls.clock() + s.hsTicks + 1 // +1: never early
	ls.wheel.add(c, c.closeAt)
	gc.SetContext(c)
	return nil, gnet.None
}

// OnTraffic implements gnet.EventHandler: input arrived, or a goroutine
// woke the connection to flush its queue.
func (s *Server) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*Conn)
	c.mu.Lock()
	c.wflags |= wBusy
	c.mu.Unlock()
	act := gnet.None
	if data, _ := gc.Next(-1); len(data) > 0 {
		c.lastRead = c.ls.wheel.now
		act = c.read(data)
	}
	if c.state == stateClosed {
		return gnet.Close
	}
	if c.flush() {
		c.ls.addBacklog(c)
	}
	return act
}

// OnClose implements gnet.EventHandler: the TCP connection is gone.
func (s *Server) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None
	}
	c.mu.Lock()
	if c.wflags&wClosed != 0 {
		c.mu.Unlock()
		return gnet.None
	}
	c.wflags |= wClosed
	c.mu.Unlock()
	c.ls.wheel.remove(c)
	c.state = stateClosed
	c.mu.Lock()
	out, ctrl := c.out, c.ctrl
	c.out, c.ctrl, c.head = nil, nil, 0
	c.mu.Unlock()
	if out != nil {
		outPool.Put(out)
	}
	if ctrl != nil {
		ctrlPool.Put(ctrl)
	}
	c.releaseReader()
	c.ls.unsubscribeAll(c)
	c.ext = nil
	if c.rflags&rUpgraded == 0 {
		return gnet.None
	}
	s.conns.Add(-1)
	c.mu.Lock()
	ce := c.cerr
	peerClosed := c.wflags&wPeerClose != 0
	c.mu.Unlock()
	switch {
	case ce == nil: // no closing handshake: the TCP connection just ended
		ce = &CloseError{Code: codec.StatusAbnormalClosure, Err: err}
	case !peerClosed && ce.Err == nil:
		// We closed, but the TCP connection ended before the peer's
		// close frame came (RFC 6455 §7.1.5 would call it 1006).
		if err == nil {
			err = ErrNoPeerClose
		}
		ce.Err = err
	}
	s.handler.OnClose(c, ce)
	return gnet.None
}

// clock returns the current tick, read from the clock (wheel.now is the
// tick of the last advance, up to a tick behind).
func (ls *loopState) clock() uint32 { return uint32(time.Since(ls.srv.start) / tick) }

// reschedule links c into the wheel at its next deadline. Event-loop only.
func (ls *loopState) reschedule(c *Conn) {
	ls.wheel.remove(c)
	ls.wheel.add(c, c.nextDeadline())
}

// nextDeadline is the tick at which c next needs attention.
func (c *Conn) nextDeadline() uint32 {
	s := c.ls.srv
	switch c.state {
	case stateHandshake, stateClosing:
		return c.closeAt
	}
	due := c.ls.wheel.now + wheelSlots - 1 // nothing to do: look again a lap later
	// lastRead and lastPing come from the loop's cached clock, which may
	// lag by a tick: +1 so that neither fires early.
	if s.idleTicks > 0 {
		due = min(due, c.lastRead+s.idleTicks+1)
	}
	if s.pingTicks > 0 {
		due = min(due, max(c.lastRead, c.lastPing)+s.pingTicks+1)
	}
	if c.ext != nil && c.ext.dfl != nil && c.ext.dfl.send.Len() > 0 {
		due = min(due, c.ext.dfl.used+s.historyTicks+1)
	}
	return due
}

// fire handles a connection whose deadline has come. Event-loop only.
func (ls *loopState) fire(c *Conn) {
	s := ls.srv
	now := ls.wheel.now
	switch c.state {
	case stateHandshake:
		if now >= c.closeAt {
			c.reject(upgrade.ErrTimeout)
			_ = ls.el.Close(c.gc)
			return
		}
	case stateClosing:
		if now >= c.closeAt {
			c.mu.Lock()
			if c.cerr != nil && c.cerr.Err == nil {
				c.cerr.Err = ErrCloseTimeout
			}
			c.mu.Unlock()
			_ = ls.el.Close(c.gc)
			return
		}
	case stateOpen:
		c.releaseIdle(now, s.historyTicks)
		switch {
		case s.idleTicks > 0 && now-c.lastRead > s.idleTicks:
			c.startClose(codec.StatusGoingAway, "idle timeout", ErrIdle, false)
			ls.flushConn(c)
			return // startClose rescheduled it
		case s.pingTicks > 0 && now-max(c.lastRead, c.lastPing) > s.pingTicks:
			c.lastPing = now
			_ = c.writeControl(codec.OpPing, nil)
			ls.flushConn(c)
		}
	}
	if c.state != stateClosed {
		ls.reschedule(c)
	}
}

// flushConn flushes c from a loop task (outside its callbacks).
func (ls *loopState) flushConn(c *Conn) {
	if c.flush() {
		ls.addBacklog(c)
	}
}

func (ls *loopState) addBacklog(c *Conn) {
	for _, b := range ls.backlog {
		if b == c {
			return
		}
	}
	ls.backlog = append(ls.backlog, c)
	ls.hasWork.Store(true)
}

// Run is the loop's periodic task: advance the wheel, retry backlogs.
func (ls *loopState) Run(context.Context) error {
	ls.pending.Store(false)
	if now := ls.clock(); now != ls.wheel.now {
		ls.wheel.advance(now, ls.fire)
	}
	if len(ls.backlog) > 0 {
		work := ls.backlog
		ls.backlog = nil
		for _, c := range work {
			if c.state != stateClosed {
				ls.flushConn(c)
			}
		}
		ls.hasWork.Store(len(ls.backlog) > 0)
	}
	return nil
}

// backlogTick is how often loops with a backlog are given another flush.
const backlogTick = 10 * time.Millisecond

// ticker drives every loop's Run from one goroutine: every tick for the
// wheel, and every backlogTick for loops with a backlog.
func (s *Server) ticker() {
	t := time.NewTicker(backlogTick)
	defer t.Stop()
	var n int
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		n++
		wheelDue := n%int(tick/backlogTick) == 0
		s.mu.Lock()
		loops := s.loops
		s.mu.Unlock()
		for _, ls := range loops {
			if (wheelDue || ls.hasWork.Load()) && ls.pending.CompareAndSwap(false, true) {
				if err := ls.el.Execute(context.Background(), ls); err != nil {
					ls.pending.Store(false)
				}
			}
		}
	}
}

// Broadcast sends a message to every open connection: Prepare and
// publish to all. Safe from any goroutine, handlers included; it returns
// without waiting. payload is not retained.
func (s *Server) Broadcast(op codec.OpCode, payload []byte) error {
	pm, err := s.Prepare(op, payload, "")
	if err != nil {
		return err
	}
	return s.publish("", pm)
}

// BroadcastPrepared sends pm to every open connection.
func (s *Server) BroadcastPrepared(pm *PreparedMessage) error { return s.publish("", pm) }

// Shutdown stops accepting upgrades, sends 1001 Going Away to every
// connection after what is already queued for it, waits until every
// connection has closed or ctx ends, and then stops the engine.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.booted:
	default: // never started, or Start failed: nothing to stop
		return errors.New("loop: Shutdown of a server that is not running")
	}
	if !s.shutdown.CompareAndSwap(false, true) {
		return errors.New("loop: Shutdown called twice")
	}
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
	if e := s.Wait(); e != nil && err == nil {
		err = e
	}
	return err
}

// originAllowed applies the origin policy: no Origin header (not a
// browser) passes; otherwise the origin's host must be the request's Host
// or the origin must be listed in AllowedOrigins.
func (s *Server) originAllowed(r *upgrade.Request) bool {
	origin := r.Origin()
	if origin == nil {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if o == "*" || bytes.EqualFold([]byte(o), origin) {
			return true
		}
	}
	host := origin
	if i := bytes.Index(host, []byte("://")); i >= 0 {
		host = host[i+3:]
	}
	return bytes.EqualFold(host, r.Host())
}

// slogAdapter lets gnet log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(f string, args ...any) { a.l.Debug(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Infof(f string, args ...any)  { a.l.Info(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Warnf(f string, args ...any)  { a.l.Warn(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Errorf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Fatalf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }

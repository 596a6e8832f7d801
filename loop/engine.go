//go:build !windows

package loop

// The gnet side: the engine type implements gnet.EventHandler for a
// Server, so that no gnet callback is part of the package's API. Every
// callback runs on the event loop that owns the connection.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/upgrade"
)

// engine receives gnet's events for one Server. The Server holds it; it
// is a separate type so that OnBoot, OnTraffic, … are not Server methods.
type engine struct {
	gnet.BuiltinEventEngine
	s *Server
}

// OnBoot implements gnet.EventHandler.
func (e *engine) OnBoot(eng gnet.Engine) gnet.Action {
	s := e.s
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
	// inflated holds the message being inflated: one at a time per loop,
	// kept between messages (at most MaxMessageSize+1 bytes) so that
	// inflating allocates nothing.
	inflated []byte
	topics   map[string]*topic
	touched  []*Conn // connections given messages by the current drain
	// staged is the message of the connections marked wStaged: see
	// Conn.stageLocked. Set by the drain, cleared by flushTouched.
	staged *PreparedMessage
	seq    uint64 // published messages delivered so far (see stream)
	// broadcasts holds the streams of connections that get broadcasts and
	// are tracked by no topic's stream (it has no subscribers).
	broadcasts topic
	swept      uint32 // tick of the last releaseStreams sweep

	inboxMu sync.Mutex
	inbox   []delivery // published messages for this loop
	busy    bool       // the inbox holds deliveries not yet handled
	stopped bool       // the loop has stopped: nothing is taken

	// flushSoon: a connection whose gnet buffer had drained went above
	// HighWaterBytes within this drain; flush before the next delivery.
	flushSoon bool

	stats   loopStats
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
func (e *engine) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	if s.shutdown.Load() {
		return nil, gnet.Close
	}
	if !s.adm.admit() {
		// No bytes: gnet skips the Close when writing OnOpen's bytes fails,
		// and would then deliver the connection's input with no Conn.
		return nil, gnet.Close
	}
	ls := s.loopOf(gc)
	c := &Conn{gc: gc, ls: ls, policy: uint8(s.opts.SlowPolicy)}
	c.raddr, _ = gc.RemoteAddr().(*net.TCPAddr)
	req := reqPool.Get().(*upgrade.Request)
	req.Reset(&s.opts.Upgrade)
	c.r().req = req
	c.lastRead = ls.wheel.now
	c.mark = ls.clock() + s.hsTicks + 1 // +1: never early
	ls.wheel.add(c, c.mark)
	gc.SetContext(c)
	return nil, gnet.None
}

// OnTraffic implements gnet.EventHandler: input arrived, or a goroutine
// woke the connection to flush its queue.
func (e *engine) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok { // refused in OnOpen, and gnet did not close it
		return gnet.Close
	}
	c.mu.Lock()
	c.wflags |= wBusy
	c.mu.Unlock()
	act := gnet.None
	if data, _ := gc.Next(-1); len(data) > 0 {
		c.lastRead = c.ls.wheel.now
		c.ls.stats.bytesIn.Add(int64(len(data)))
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
func (e *engine) OnClose(gc gnet.Conn, err error) gnet.Action {
	s := e.s
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
	c.q.release()
	if m := c.more(); m != nil {
		s.sendUsed.Add(-m.charged)
	}
	c.mu.Unlock()
	c.releaseReader()
	c.ls.unsubscribeAll(c)
	c.ext = nil
	s.adm.release(c.rflags&rUpgraded == 0)
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

// flushConn flushes c from a loop task (outside its callbacks).
func (ls *loopState) flushConn(c *Conn) {
	if c.flush() {
		ls.addBacklog(c)
	}
}

// addBacklog adds c to the loop's backlog unless it is there already
// (a flag, not a search: a poll re-adds every connection still behind).
func (ls *loopState) addBacklog(c *Conn) {
	c.mu.Lock()
	in := c.wflags&wBacklog != 0
	c.wflags |= wBacklog
	c.mu.Unlock()
	if in {
		return
	}
	ls.backlog = append(ls.backlog, c)
	ls.hasWork.Store(true)
}

// Run is the loop's periodic task: advance the wheel, retry backlogs.
func (ls *loopState) Run(context.Context) error {
	ls.pending.Store(false)
	if now := ls.clock(); now != ls.wheel.now {
		ls.wheel.advance(now, ls.fire)
		ls.releaseStreams(now)
	}
	if len(ls.backlog) > 0 {
		work := ls.backlog
		ls.backlog = nil
		for _, c := range work {
			c.mu.Lock()
			c.wflags &^= wBacklog
			c.mu.Unlock()
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

// slogAdapter lets gnet log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(f string, args ...any) { a.l.Debug(fmt.Sprintf(f, args...)) }

func (a slogAdapter) Infof(f string, args ...any) { a.l.Info(fmt.Sprintf(f, args...)) }

func (a slogAdapter) Warnf(f string, args ...any) { a.l.Warn(fmt.Sprintf(f, args...)) }

func (a slogAdapter) Errorf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }

func (a slogAdapter) Fatalf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }

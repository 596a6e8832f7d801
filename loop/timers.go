//go:build !windows

package loop

// Timers: every deadline of a connection (handshake, ping, idle, closing
// handshake, release of a deflate History) is kept in its loop's wheel.

import (
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/upgrade"
)

// ticks converts d to wheel ticks, rounding up; 0 for d <= 0 (disabled).
func ticks(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + tick - 1) / tick)
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
		return c.mark
	}
	due := c.ls.wheel.now + wheelSlots - 1 // nothing to do: look again a lap later
	// lastRead and mark (the last ping) come from the loop's cached clock, which may
	// lag by a tick: +1 so that neither fires early.
	if s.idleTicks > 0 {
		due = min(due, c.lastRead+s.idleTicks+1)
	}
	if s.msgTicks > 0 && c.rd != nil && c.rd.since != 0 {
		due = min(due, c.rd.since-1+s.msgTicks+1)
	}
	if s.pingTicks > 0 {
		due = min(due, max(c.lastRead, c.mark)+s.pingTicks+1)
	}
	if m := c.more(); m != nil && m.dfl != nil && (m.dfl.send.Len() > 0 || m.dfl.sh != nil) {
		due = min(due, m.dfl.used+s.historyTicks+1)
	}
	return due
}

// fire handles a connection whose deadline has come. Event-loop only.
func (ls *loopState) fire(c *Conn) {
	s := ls.srv
	now := ls.wheel.now
	switch c.state {
	case stateHandshake:
		if now >= c.mark {
			c.reject(upgrade.ErrTimeout)
			_ = ls.el.Close(c.gc)
			return
		}
	case stateClosing:
		if now >= c.mark {
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
		case s.msgTicks > 0 && c.rd != nil && c.rd.since != 0 && now-(c.rd.since-1) > s.msgTicks:
			c.fail(ErrMessageTimeout)
			ls.flushConn(c)
			return // fail rescheduled it
		case s.idleTicks > 0 && now-c.lastRead > s.idleTicks:
			c.startClose(codec.StatusGoingAway, "idle timeout", ErrIdle, false)
			ls.flushConn(c)
			return // startClose rescheduled it
		case s.pingTicks > 0 && now-max(c.lastRead, c.mark) > s.pingTicks:
			c.mark = now
			_ = c.writeControl(codec.OpPing, nil)
			ls.flushConn(c)
		}
	}
	if c.state != stateClosed {
		ls.reschedule(c)
	}
}

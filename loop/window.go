//go:build !windows

package loop

import "time"

// A conflating connection (SlowConflate) keeps what its peer cannot take
// yet in the send queue, where a newer message of the same key can still
// replace it: everything handed to gnet and the kernel goes out in order,
// however old it is by then. So it is given only an in-flight window
// sized from its measured drain rate: at most what the peer consumes in
// windowTarget (gnet's buffer plus the kernel's unsent and unacknowledged
// bytes), never less than minWindow (or one frame) and never more than
// other connections may have in flight (lowWater+maxFlush). A reader that
// keeps up drains fast and gets the largest window, so it is held back no
// more than any other connection; a slow reader gets a small one, and its
// backlog stays in the queue. The flush that finds the window full leaves
// the rest queued and marks the connection behind (wBehind); the loop's
// backlog poll (every backlogTick) gives it its next part when the peer
// has read. Only Linux can tell what the kernel holds (TCP_INFO): on other
// systems a conflating connection is flushed like the others.
//
// The drain rate is the peer's acknowledged bytes per second over at
// least windowSample, smoothed: each sample moves the rate half way to
// it. A sample can lower the rate only if the connection was behind at
// the end of every flush of its interval (data queued, or bytes in gnet
// or unsent in the kernel): otherwise the peer took all it was given and
// the sample measures the publisher, not the peer. Such a sample first
// caps the rate at twice itself, so that a slow reader's window comes
// down from the starting one within a sample or two (a slow reader's
// acknowledgements come in bursts, as its receive buffer frees room, so
// single samples swing between 0 and several times its rate). A window
// too small for a fast peer corrects itself within a few samples:
// refilled at every flush (a publish, or the poll, at least every
// backlogTick), it lets through windowTarget/backlogTick times the rate.
//
// What the peer's own receive buffer holds (acknowledged, not yet read by
// the application) is outside the window: a client that reads slowly
// through a large receive buffer reads values as old as that buffer holds
// at its read rate.
const (
	windowTarget = 100 * time.Millisecond
	windowSample = 100 * time.Millisecond
	minWindow    = 512
	maxWindow    = lowWater + maxFlush
	// A connection starts at the largest window (as if not windowed), so
	// that readers that keep up are never held back.
	startRate = maxWindow * int64(time.Second/windowTarget)
)

// sendWindow is a conflating connection's window state (in connExt).
// Event-loop only.
type sendWindow struct {
	at    time.Duration // time of the last sample since the server started; 0: none yet
	acked uint64        // the peer's acknowledged bytes at the last sample
	rate  int64         // smoothed drain rate, bytes per second
	// idle: a flush since the last sample ended with nothing held back
	// anywhere (the sample cannot lower the rate).
	idle bool
}

// sockQueue is what the kernel holds of a connection's output, and what
// its peer has acknowledged so far.
type sockQueue struct {
	unsent  int    // bytes not yet sent (waiting for the peer's window)
	unacked int    // bytes sent and not yet acknowledged
	acked   uint64 // bytes acknowledged since the connection began
}

// room returns how many data bytes c may hand gnet now, given gnet's
// outbound bytes out and the kernel's queue k, sampling the drain rate
// when windowSample has passed. It returns at least 1 when nothing is in
// flight (the take hands out at least one frame). Event-loop only.
func (w *sendWindow) room(now time.Duration, out int, k sockQueue) int {
	switch dt := now - w.at; {
	case w.at == 0:
		w.at, w.acked, w.rate = now, k.acked, startRate
	case dt >= windowSample:
		sample := int64(float64(k.acked-w.acked) / dt.Seconds())
		switch {
		case !w.idle:
			w.rate = min(w.rate, 2*sample)
			w.rate += (sample - w.rate) / 2
		case sample > w.rate:
			w.rate += (sample - w.rate) / 2
		}
		w.at, w.acked, w.idle = now, k.acked, false
	}
	win := int(min(max(w.rate*int64(windowTarget)/int64(time.Second), minWindow), maxWindow))
	return win - (out + k.unsent + k.unacked)
}

// window returns, for a conflating connection with data queued, its
// window state and the data bytes it may hand gnet now (see
// sendWindow.room), and whether the kernel holds bytes it has not sent.
// w is nil, and limit maxFlush, when there is nothing to measure: no data
// queued, or a system that cannot tell. gnet holds out bytes.
// Event-loop only.
func (c *Conn) window(out int) (w *sendWindow, limit int, held bool) {
	c.mu.Lock()
	if c.q.data != nil {
		w = &c.x().win // c.ext is read by other goroutines under c.mu
	}
	c.mu.Unlock()
	if w == nil {
		return nil, maxFlush, false
	}
	k, ok := sockQueueOf(c.gc.Fd())
	if !ok {
		return nil, maxFlush, false
	}
	room := w.room(time.Since(c.ls.srv.start), out, k)
	return w, min(room, maxFlush), k.unsent > 0
}

//go:build !windows

package loop

import "time"

// A conflating connection (SlowConflate) keeps what its peer cannot take
// yet in the send queue, where a newer message of the same key can still
// replace it: everything handed to gnet and the kernel goes out in order,
// however old it is by then. So a slow one is given only an in-flight
// window sized from its measured drain rate: at most what the peer
// consumes in windowTarget (gnet's buffer plus the kernel's unsent and
// unacknowledged bytes), never less than minWindow (or one frame). A peer
// that drains maxWindow or more in windowTarget is not held to a window:
// it is flushed like any other connection, so readers that keep up lose
// nothing to it. The flush that leaves data queued marks the connection
// behind (wBehind), which is when its keyed messages conflate; the loop's
// backlog poll (every backlogTick) gives it its next part once the peer
// has read. Only Linux can tell what the kernel holds (TCP_INFO): on
// other systems a conflating connection is flushed like the others.
//
// The drain rate is the peer's acknowledged bytes per second over at
// least windowSample. A sample can lower the rate only if the connection
// was behind at the end of every flush of its interval (data queued, or
// bytes in gnet or unsent in the kernel): otherwise the peer took all it
// was given and the sample measures the publisher, not the peer. A lower
// sample replaces the rate, but the rate falls by at most 4 times a
// sample: a reader that keeps up and stalls for a moment keeps its
// window, a slow one is windowed within a few samples. A higher sample
// moves the rate half way to it (a slow reader's acknowledgements come in
// bursts, as its receive buffer frees room). After an interval in which
// the peer took all it was given, the rate at least doubles (up to no
// window): a reader that was slow once and keeps up again is soon not
// held to one, and gets every message of the next burst. A window too
// small for a peer corrects itself: refilled at every flush (a publish,
// or the poll at least every backlogTick), it lets
// windowTarget/backlogTick times the rate through.
//
// What the peer's own receive buffer holds (acknowledged, not yet read by
// the application) is outside the window: a client that reads slowly
// through a large receive buffer reads values as old as that buffer holds
// at its read rate. Its advertised window does not show it either: a Go
// client on Linux loopback with the default buffer, reading 5 KB/s of 20
// KB/s, advertised 64 KiB throughout while 150 KB piled up unread (the
// kernel grows the buffer), so every ACK looked like a reader keeping up.
const (
	windowTarget = 50 * time.Millisecond
	windowSample = 100 * time.Millisecond
	minWindow    = 512
	maxWindow    = 64 << 10
	// A connection starts unwindowed, as a reader that keeps up.
	startRate = 2 * maxWindow * int64(time.Second/windowTarget)
)

// sendWindow is a conflating connection's window state (in connMore).
// Event-loop only.
type sendWindow struct {
	at    time.Duration // time of the last sample since the server started; 0: none yet
	acked uint64        // the peer's acknowledged bytes at the last sample
	rate  int64         // drain rate, bytes per second
	// idle: a flush since the last sample ended with nothing held back
	// anywhere (the sample cannot lower the rate).
	idle bool
}

// size returns the window, or 0 if the connection is not held to one.
func (w *sendWindow) size() int {
	win := w.rate * int64(windowTarget) / int64(time.Second)
	if win >= maxWindow {
		return 0
	}
	return int(max(win, minWindow))
}

// sockQueue is what the kernel holds of a connection's output, and what
// its peer has acknowledged so far.
type sockQueue struct {
	unsent  int    // bytes not yet sent (waiting for the peer's window)
	unacked int    // bytes sent and not yet acknowledged
	acked   uint64 // bytes acknowledged since the connection began
}

// room returns how many data bytes may be handed to gnet now, given
// gnet's outbound bytes out and the kernel's queue k (maxFlush if the
// connection is not held to a window), sampling the drain rate when
// windowSample has passed. Event-loop only.
func (w *sendWindow) room(now time.Duration, out int, k sockQueue) int {
	switch dt := now - w.at; {
	case w.at == 0:
		w.at, w.acked, w.rate = now, k.acked, startRate
	case dt >= windowSample:
		sample := int64(float64(k.acked-w.acked) / dt.Seconds())
		switch {
		case w.idle:
			// The peer took all it was given: the sample measures the
			// publisher. The rate doubles, so that a reader that was
			// slow once and keeps up again is soon not held to a window.
			w.rate = min(max(2*w.rate, sample), startRate)
		case sample > w.rate:
			w.rate += (sample - w.rate) / 2
		default:
			w.rate = max(sample, w.rate/4)
		}
		w.at, w.acked, w.idle = now, k.acked, false
	}
	win := w.size()
	if win == 0 {
		return maxFlush
	}
	return win - (out + k.unsent + k.unacked)
}

// window returns, for a conflating connection with data queued, its
// window state and the data bytes it may hand gnet now (see
// sendWindow.room), and whether the kernel holds bytes it has not sent.
// w is nil, and limit maxFlush, when nothing was measured: no data
// queued, a connection not held to a window between samples, or a system
// that cannot tell. gnet holds out bytes. Event-loop only.
func (c *Conn) window(out int) (w *sendWindow, limit int, held bool) {
	c.mu.Lock()
	if c.q.data != nil {
		w = &c.m().win // c.ext is read by other goroutines under c.mu
	}
	c.mu.Unlock()
	if w == nil {
		return nil, maxFlush, false
	}
	now := time.Since(c.ls.srv.start)
	if w.at != 0 && w.size() == 0 && now-w.at < windowSample {
		return nil, maxFlush, false
	}
	k, ok := sockQueueOf(c.gc.Fd())
	if !ok {
		return nil, maxFlush, false
	}
	return w, min(w.room(now, out, k), maxFlush), k.unsent > 0
}

//go:build !windows

package loop

import (
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// TestBurstToHealthy: a healthy client that reads everything gets a burst
// of n 4 KiB messages published without a pause (default options). A
// drain queued the whole burst before its first flush, so the queue went
// above HighWaterBytes and the client was closed as slow having received
// nothing (n=300: 0 received, 1008).
func TestBurstToHealthy(t *testing.T) {
	for _, n := range []int{100, 300, 1000} {
		h := &recHandler{}
		h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
		s, addr := startRec(t, h, Options{})
		w := dialWS(t, addr, 0)
		waitFor(t, "open", func() bool { return s.Stats().Subscriptions == 1 })
		pm, _ := s.Prepare(codec.OpBinary, make([]byte, 4096), "")
		done := make(chan int)
		go func() {
			got := 0
			for {
				op, _, err := w.next(3 * time.Second)
				if err != nil || op == codec.OpClose {
					done <- got
					return
				}
				got++
			}
		}()
		for range n {
			_ = s.Publish("t", pm)
		}
		got := <-done
		st := s.Stats()
		t.Logf("burst %d: client got %d; SlowClosed %d Delivered %d Dropped %d MessagesOut %d", n, got, st.SlowClosed, st.Delivered, st.Dropped, st.MessagesOut)
		if got != n {
			t.Errorf("burst %d: healthy client got %d", n, got)
		}
	}
}

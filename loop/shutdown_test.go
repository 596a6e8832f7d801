//go:build !windows

package loop

import (
	"runtime"
	"testing"

	"github.com/wsgate/wsgate/codec"
)

// Publish after Shutdown: what does it return, and does anything grow?
// TestPublishAfterShutdown: once the engine has stopped, Publish and
// Broadcast say so (ErrServerClosed) and keep nothing (they returned nil
// and every message stayed in an inbox nothing drained: 64 MB for a
// million).
func TestPublishAfterShutdown(t *testing.T) {
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	s, addr := startRec(t, h, Options{NumLoops: 2})
	_ = dialWS(t, addr, 0)
	waitFor(t, "open", func() bool { return s.Stats().Subscriptions == 1 })
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != ErrServerClosed {
		t.Fatalf("Wait: %v, want ErrServerClosed", err)
	}
	pm, _ := s.Prepare(codec.OpBinary, make([]byte, 100), "")
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	var first, last error
	for i := range 100_000 {
		err := s.Publish("t", pm)
		if i == 0 {
			first = err
		}
		last = err
	}
	err := s.Broadcast(codec.OpText, []byte("x"))
	runtime.GC()
	runtime.ReadMemStats(&m1)
	inbox := 0
	for _, ls := range s.loops {
		ls.inboxMu.Lock()
		inbox += len(ls.inbox)
		ls.inboxMu.Unlock()
	}
	if first != ErrServerClosed || last != ErrServerClosed || err != ErrServerClosed || inbox != 0 {
		t.Fatalf("after Shutdown: Publish %v then %v, Broadcast %v, %d inbox entries kept; want ErrServerClosed and none",
			first, last, err, inbox)
	}
	if grew := int64(m1.HeapAlloc) - int64(m0.HeapAlloc); grew > 1<<20 {
		t.Fatalf("heap grew by %d bytes over 100,000 refused publishes", grew)
	}
}

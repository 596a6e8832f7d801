//go:build !windows

package loop

import (
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// TestNoMessageAfterHandlerCloseBusy: TestNoMessageAfterHandlerClose, but
// the handler publishes first, so the loop's inbox is busy and Close joins
// it: no OnMessage after the handler's Close either (two came after it).
func TestNoMessageAfterHandlerCloseBusy(t *testing.T) {
	var got []string
	var mu sync.Mutex
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		mu.Lock()
		got = append(got, string(p))
		mu.Unlock()
		pm, _ := h.srv.Prepare(codec.OpText, []byte("pub"), "")
		_ = h.srv.Publish("t", pm)
		_ = c.Close(codec.StatusNormalClosure, "enough")
	}
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	time.Sleep(100 * time.Millisecond)
	var b []byte
	for _, s := range []string{"one", "two", "three"} {
		b = append(b, cf(true, codec.OpText, []byte(s))...)
	}
	w.c.Write(b)
	for {
		op, p, err := w.next(2 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("client got %v %q", op, p)
		if op == codec.OpClose {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("OnMessage calls: %q", got)
	if len(got) != 1 {
		t.Errorf("OnMessage called %d times after the handler's Close", len(got)-1)
	}
}

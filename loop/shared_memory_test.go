//go:build !race && !windows

package loop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// TestIdleMemoryShared measures what shared streams keep per connection:
// subscribers of one topic with server context takeover that have had 60
// ticks (members of the topic's stream, holding no History of their own),
// against the same once Config.HistoryIdle has passed (no deflate state
// left). Set WSGATE_IDLE_CONNS to change the count (default 10,000).
func TestIdleMemoryShared(t *testing.T) {
	n := idleConns(t)
	const idle = 3 * time.Second
	h := &subHandler{policy: serverPolicy}
	o := Options{NumLoops: 2, Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: idle}}
	s, err := NewServer(h, o)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	addr := freeAddr(t)
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	stop := startClients(t, addr, n, "deflate", nil)
	defer stop()
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == int64(n) })
	g := newTickGen(3)
	for i := range 60 {
		pm, err := s.Prepare(codec.OpText, g.next(fmt.Sprintf(`"seq":%d,`, i)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "deliveries", func() bool { return s.Stats().Delivered == int64(60*n) })
	time.Sleep(200 * time.Millisecond)
	held := sampleMem()
	tracked := countConns(s, func(c *Conn) bool { d := c.dfl(); return d != nil && d.sh != nil && d.send.Len() == 0 })
	hist := countConns(s, func(c *Conn) bool { d := c.dfl(); return d != nil && d.send.Len() > 0 })
	time.Sleep(idle + time.Second)
	released := sampleMem()
	left := countConns(s, func(c *Conn) bool { return c.dfl() != nil })
	perConn := float64(held.heap-released.heap) / float64(n)
	t.Logf("%d members without a History of their own, %d with one; HistoryIdle released %.0f B of heap per connection, %d keep deflate state",
		tracked, hist, perConn, left)
	if tracked != n || hist != 0 {
		t.Errorf("%d of %d connections tracked by the stream, %d with a History of their own; want all, none", tracked, n, hist)
	}
	if left != 0 {
		t.Errorf("%d connections keep deflate state after HistoryIdle; want 0", left)
	}
	// A member holds its connMore and deflateState (80 B each), not a
	// 4 KiB History.
	if perConn > 512 || perConn < 64 {
		t.Errorf("a member held %.0f B of heap; want its deflate state, without a History (64–512 B)", perConn)
	}
}

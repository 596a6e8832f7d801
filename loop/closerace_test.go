//go:build !windows

package loop

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

type spinHandler struct {
	nopHandler
	cur atomic.Pointer[Conn]
}

func (h *spinHandler) OnMessage(c *Conn, _ codec.OpCode, _ []byte) { h.cur.Store(c) }

// A Close from another goroutine that lands while the loop is inside
// flush must still move the connection to the closing state, so that
// CloseTimeout ends it when the peer never answers.
func TestCloseDuringFlushArmsTimeout(t *testing.T) {
	h := &spinHandler{}
	o := Options{NumLoops: 1, PingInterval: -1, IdleTimeout: -1, CloseTimeout: 200 * time.Millisecond}
	o.Logger = quietLogger()
	s, err := NewServer(h, o)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := contextWithTimeout(time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	stop := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		n := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := h.cur.Swap(nil)
			if c == nil {
				continue
			}
			n++
			for i := 0; i < n%200; i++ {
			}
			_ = c.Close(codec.StatusNormalClosure, "x")
		}
	}()
	trials := 3000
	var clients []*wsClient
	for i := 0; i < trials; i++ {
		w := dialWS(t, addr, 0)
		w.c.Write(cf(true, codec.OpText, []byte("m")))
		clients = append(clients, w)
		if len(clients) > 200 {
			for _, w := range clients {
				w.c.Close()
			}
			clients = clients[:0]
		}
		if i%500 == 0 {
			time.Sleep(600 * time.Millisecond)
			var stuck int
			onLoops(s, func(ls *loopState) {
				ls.wheel.each(func(c *Conn) {
					c.mu.Lock()
					if c.state == stateOpen && c.wflags&wCloseQ != 0 {
						stuck++
					}
					c.mu.Unlock()
				})
			})
			if stuck > 0 {
				time.Sleep(1500 * time.Millisecond)
				var again, sent int
				onLoops(s, func(ls *loopState) {
					ls.wheel.each(func(c *Conn) {
						c.mu.Lock()
						if c.state == stateOpen && c.wflags&wCloseQ != 0 {
							again++
							if c.wflags&wCloseSent != 0 && c.rflags&rShutWr != 0 {
								sent++
							}
						}
						c.mu.Unlock()
					})
				})
				t.Logf("1.5 s later (CloseTimeout 200 ms): %d still open with a queued close, %d of them with the close frame sent and SHUT_WR done", again, sent)
				close(stop)
				t.Fatalf("after %d trials: %d connections sent/queued their close frame but are still open (no close timeout); Conns %d", i+1, stuck, s.Conns())
			}
		}
	}
	close(stop)
}

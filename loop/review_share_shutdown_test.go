//go:build !windows

package loop

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// TestReviewShareShutdownMidStream: clients of several windows read a
// topic's ticks, interleaved with broadcasts and direct writes, while the
// server shuts down; everything they get before the close frame must
// inflate, with their own windows, to exactly what was sent.
func TestReviewShareShutdownMidStream(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 2, Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: 200 * time.Millisecond}}
	s, addr := startServer(t, h, o, nil)
	reg := &reviewReg{m: map[int][]byte{}}
	type cl struct {
		ic   *inflateClient
		c    *Conn
		n    int
		err  error
		shut bool
	}
	var cls []*cl
	for i := range 12 {
		offer := "permessage-deflate"
		if i%4 != 0 {
			offer += fmt.Sprintf("; server_max_window_bits=%d", 8+i%8)
		}
		x := &cl{ic: dialInflate(t, addr, offer)}
		x.c = <-h.conns
		if err := s.Subscribe(x.c, "t"); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, x)
	}
	var wg sync.WaitGroup
	for _, x := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				op, p, _, err := x.ic.next(10 * time.Second)
				if err != nil {
					x.err = err
					return
				}
				if op == codec.OpClose {
					x.shut = true
					return
				}
				if err := reg.check(p); err != nil {
					x.err = err
					return
				}
				x.n++
			}
		}()
	}
	var stop atomic.Bool
	var pw sync.WaitGroup
	pw.Add(1)
	go func() {
		defer pw.Done()
		g := newTickGen(11)
		for i := 0; !stop.Load(); i++ {
			p := reg.add(g.next(""))
			switch i % 17 {
			case 5:
				_ = s.Broadcast(codec.OpText, p)
			case 9:
				_ = cls[i%len(cls)].c.WriteMessage(codec.OpText, p)
			default:
				pm, _ := s.Prepare(codec.OpText, p, "")
				_ = s.Publish("t", pm)
			}
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(700 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Shutdown(ctx)
	stop.Store(true)
	pw.Wait()
	wg.Wait()
	t.Logf("shutdown: %v", err)
	for i, x := range cls {
		if x.err != nil && !x.shut {
			if x.n > 0 && isEOF(x.err) {
				t.Logf("client %d (window %d): %d messages, then %v", i, x.ic.window, x.n, x.err)
				continue
			}
			t.Errorf("client %d (window %d): after %d messages: %v", i, x.ic.window, x.n, x.err)
		} else {
			t.Logf("client %d (window %d): %d messages, close frame %v", i, x.ic.window, x.n, x.shut)
		}
	}
}

func isEOF(err error) bool { return err != nil && (err.Error() == "EOF" || isTimeout(err)) }

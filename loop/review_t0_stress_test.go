//go:build !windows

package loop

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/codec"
)

// TestReviewT0ConcurrentStress: 8 goroutines, each owning 3 real clients
// spread over 2 loops, subscribe and unsubscribe them at random to 6
// topics (the first topic often) while a ninth publishes and broadcasts,
// so that the operations of different connections meet in the same
// drains. Each connection's final topics are known (its operations come
// from one goroutine, in order): the loops' structures and
// Stats().Subscriptions must match them, and a last round of messages
// must reach exactly the clients on each topic.
func TestReviewT0ConcurrentStress(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1, NumLoops: 2})
	topics := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	const workers, per = 8, 3
	slots := make([]*t0Slot, workers*per)
	for i := range slots {
		r := newT0Client(t, addr, "")
		waitFor(t, "open", func() bool { return h.conn(i) != nil })
		slots[i] = &t0Slot{r: r, c: h.conn(i), name: fmt.Sprintf("client %d", i)}
	}
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	pubs.Add(1)
	go func() {
		defer pubs.Done()
		pm, _ := s.Prepare(codec.OpText, []byte("noise"), "")
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if k%10 == 0 {
				_ = s.BroadcastPrepared(pm)
			} else {
				_ = s.Publish(topics[k%len(topics)], pm)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			mine := slots[w*per : (w+1)*per]
			for range 400 {
				sl := mine[rng.IntN(per)]
				tp := topics[rng.IntN(len(topics))]
				if len(sl.subs) > 0 && rng.IntN(2) == 0 {
					tp = sl.subs[0]
				}
				if rng.IntN(2) == 0 {
					if err := s.Subscribe(sl.c, tp); err != nil {
						t.Error(err)
						return
					}
					if !sl.has(tp) {
						sl.subs = append(sl.subs, tp)
					}
				} else {
					if err := s.Unsubscribe(sl.c, tp); err != nil {
						t.Error(err)
						return
					}
					sl.drop(tp)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubs.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Skip the noise: a sentinel, then the round that counts.
	if err := s.Broadcast(codec.OpText, t0Payload("S")); err != nil {
		t.Fatal(err)
	}
	for _, sl := range slots {
		waitFor(t, "sentinel", func() bool {
			ids := sl.r.ids()
			return len(ids) > 0 && ids[len(ids)-1] == "S"
		})
		sl.r.mu.Lock()
		sl.r.got = sl.r.got[:0]
		sl.r.mu.Unlock()
	}
	subs := map[*Conn][]string{}
	for _, sl := range slots {
		subs[sl.c] = sl.subs
	}
	t0Check(t, s, subs, nil)
	for k, tp := range topics {
		id := fmt.Sprintf("%s-%d", tp, k)
		pm, _ := s.Prepare(codec.OpText, t0Payload(id), "")
		if err := s.Publish(tp, pm); err != nil {
			t.Fatal(err)
		}
		for _, sl := range slots {
			if sl.has(tp) {
				sl.want = append(sl.want, id)
			}
		}
	}
	if err := s.Broadcast(codec.OpText, t0Payload("E")); err != nil {
		t.Fatal(err)
	}
	for _, sl := range slots {
		sl.want = append(sl.want, "E")
		t0Wait(t, sl.r, sl.want, sl.name, func() string { return fmt.Sprint(sl.subs) })
	}
}

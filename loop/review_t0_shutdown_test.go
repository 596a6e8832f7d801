//go:build !windows

package loop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/deflate"
)

// TestReviewT0Shutdown: clients on none, one, two and five topics (two
// loops, with and without permessage-deflate) read exactly their
// messages, then Shutdown sends each its 1001 after them and nothing
// else; once it returns no subscription is left: Stats().Subscriptions
// is 0, no loop holds a topic and no Conn holds one.
func TestReviewT0Shutdown(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1, NumLoops: 2,
		Deflate: &deflate.Config{ServerContextTakeover: true}})
	topics := []string{"a", "b", "c", "d", "e"}
	var slots []*t0Slot
	for i := range 16 {
		offer := ""
		if i%2 == 1 {
			offer = "permessage-deflate"
		}
		r := newT0Client(t, addr, offer)
		waitFor(t, "open", func() bool { return h.conn(i) != nil })
		sl := &t0Slot{r: r, c: h.conn(i), name: fmt.Sprintf("client %d", i)}
		for j := range []int{0, 1, 2, 5}[i%4] {
			tp := topics[(i+j)%len(topics)]
			if err := s.Subscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.subs = append(sl.subs, tp)
		}
		slots = append(slots, sl)
	}
	for k := range 40 {
		tp := topics[k%len(topics)]
		id := fmt.Sprintf("%s%d", tp, k)
		t0Publish(t, s, tp, id)
		for _, sl := range slots {
			if sl.has(tp) {
				sl.want = append(sl.want, id)
			}
		}
	}
	for _, sl := range slots {
		t0Wait(t, sl.r, sl.want, sl.name, func() string { return "" })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sl := range slots {
		select {
		case <-sl.r.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: reader did not end", sl.name)
		}
		sl.r.mu.Lock()
		got, closed, err := len(sl.r.got), sl.r.closed, sl.r.err
		sl.r.mu.Unlock()
		if got != len(sl.want) || !closed || err != nil {
			t.Errorf("%s: %d messages of %d, close frame %v, err %v", sl.name, got, len(sl.want), closed, err)
		}
	}
	if n := s.Stats().Subscriptions; n != 0 {
		t.Errorf("Stats().Subscriptions = %d after Shutdown", n)
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, ls := range loops {
		if len(ls.topics) != 0 {
			t.Errorf("a loop holds %d topics after Shutdown", len(ls.topics))
		}
	}
	for _, sl := range slots {
		if sl.c.t0.t != nil || sl.c.ext != nil {
			t.Errorf("%s holds a topic after Shutdown", sl.name)
		}
	}
}

//go:build !windows

package loop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// t0Perms returns every order of 0..n-1.
func t0Perms(n int) [][]int {
	if n == 0 {
		return [][]int{nil}
	}
	var out [][]int
	for _, p := range t0Perms(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int(nil), p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestReviewT0UnsubscribeEveryOrder: 24 real clients on one loop, all on
// the same 4 topics (subscribed in 4 different orders, so that each
// topic is the inline first topic of some of them), leave the topics in
// the 24 orders there are, one topic each per round: the first topic
// while others remain, the last, the middle ones; every removal from a
// topic moves another subscriber (held inline or in its connExt) in the
// topic's list. Rounds alternate the queued Unsubscribe and
// UnsubscribeOnLoop. After each round every topic gets a message and
// every client must read exactly those of the topics it is still on; the
// loop's structures and Stats().Subscriptions must agree. Then they come
// back in reverse order (the topics, emptied, are made anew), and
// clients close (client close frame, Conn.Close, RST) on 0, 1, 2 or 4
// topics while the others go on reading exactly their messages.
func TestReviewT0UnsubscribeEveryOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		offer string
		opts  Options
	}{
		{"plain", "", Options{}},
		{"deflate", "permessage-deflate", Options{Deflate: &deflate.Config{ServerContextTakeover: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) { t0EveryOrder(t, tc.offer, tc.opts) })
	}
}

func t0EveryOrder(t *testing.T, offer string, o Options) {
	h := &recHandler{}
	t0Handler(h)
	o.PingInterval, o.IdleTimeout, o.NumLoops = -1, -1, 1
	s, addr := startRec(t, h, o)
	topics := []string{"A", "B", "C", "D"}
	perms := t0Perms(len(topics))
	n := len(perms)
	slots := make([]*t0Slot, n)
	for i := range slots {
		r := newT0Client(t, addr, offer)
		waitFor(t, "open", func() bool { return h.conn(i) != nil })
		slots[i] = &t0Slot{r: r, c: h.conn(i), name: fmt.Sprintf("client %d (order %v)", i, perms[i])}
	}
	for j := range topics {
		for i, sl := range slots {
			tp := topics[(i+j)%len(topics)]
			if err := s.Subscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.subs = append(sl.subs, tp)
		}
	}
	var log []string
	logs := func() string { return strings.Join(log, "; ") }
	var dead []*Conn
	seq := 0
	// round publishes a message to every topic and a sentinel broadcast,
	// and checks what every open client read and the loop's structures.
	round := func(what string) {
		log = append(log, what)
		for _, tp := range topics {
			seq++
			id := fmt.Sprintf("%s%d", tp, seq)
			t0Publish(t, s, tp, id)
			for _, sl := range slots {
				if sl != nil && sl.has(tp) {
					sl.want = append(sl.want, id)
				}
			}
		}
		seq++
		id := fmt.Sprintf("Q%d", seq)
		if err := s.Broadcast(codec.OpText, t0Payload(id)); err != nil {
			t.Fatal(err)
		}
		subs := map[*Conn][]string{}
		for _, sl := range slots {
			if sl != nil {
				sl.want = append(sl.want, id)
				subs[sl.c] = sl.subs
			}
		}
		for _, sl := range slots {
			if sl != nil {
				t0Wait(t, sl.r, sl.want, sl.name+" after "+what, logs)
			}
		}
		t0Check(t, s, subs, dead)
	}
	round("subscribe all")
	for r := range topics {
		onLoop := r%2 == 1
		for i, sl := range slots {
			tp := topics[perms[i][r]]
			if onLoop {
				seq++
				id := fmt.Sprintf("A%d", seq)
				sl.r.send(t, "U "+tp+" "+id)
				sl.want = append(sl.want, id)
			} else if err := s.Unsubscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.drop(tp)
		}
		if onLoop {
			for _, sl := range slots {
				t0Wait(t, sl.r, sl.want, sl.name+": ack", logs)
			}
		}
		round(fmt.Sprintf("unsubscribe round %d (on loop %v)", r, onLoop))
	}
	for r := len(topics) - 1; r >= 0; r-- {
		for i, sl := range slots {
			tp := topics[perms[i][r]]
			if err := s.Subscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.subs = append(sl.subs, tp)
		}
		round(fmt.Sprintf("resubscribe round %d", r))
	}
	// Leave client i on i%4 topics other than the last (4 = all) and close
	// every other one, in turn by its close frame, Conn.Close and a RST.
	for i, sl := range slots {
		keep := []int{1, 2, 4, 0}[i%4]
		for len(sl.subs) > keep {
			tp := sl.subs[0]
			if err := s.Unsubscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.drop(tp)
		}
	}
	round("thin out")
	closes := 0
	for i, sl := range slots {
		if i%2 == 0 {
			continue
		}
		switch i / 2 % 3 {
		case 0:
			sl.r.closeByClient(t, 4001)
		case 1:
			if err := sl.c.Close(4000, ""); err != nil {
				t.Fatal(err)
			}
		default:
			sl.r.reset(t)
		}
		closes++
		dead = append(dead, sl.c)
		slots[i] = nil
	}
	waitFor(t, "OnClose", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.closes) == closes
	})
	round("after closes")
	for i, sl := range slots {
		if sl == nil {
			continue
		}
		for _, tp := range append([]string(nil), sl.subs...) {
			if err := s.Unsubscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.drop(tp)
		}
		if i%4 == 0 {
			round(fmt.Sprintf("client %d left all", i))
		}
	}
	round("none subscribed")
	var ntopics int
	onLoops(s, func(ls *loopState) { ntopics += len(ls.topics) })
	if ntopics != 0 {
		t.Errorf("%d topics left without subscribers", ntopics)
	}
}

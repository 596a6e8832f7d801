//go:build !windows

package loop

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// t0Slot is one client of the model: its connection and the topics it is
// subscribed to, in the order it subscribed (the first is the one its
// Conn holds inline until it leaves).
type t0Slot struct {
	r    *t0Client
	c    *Conn
	subs []string
	want []string // the ids of the data messages it must read, in order
	name string   // for errors: slot and generation
}

// subs0 returns the first topic, or "".
func (sl *t0Slot) subs0() string {
	if len(sl.subs) == 0 {
		return ""
	}
	return sl.subs[0]
}

func (sl *t0Slot) has(tp string) bool {
	for _, x := range sl.subs {
		if x == tp {
			return true
		}
	}
	return false
}

// drop removes tp as the server does: the last topic takes its place,
// so that subs[0] stays the topic the Conn holds inline.
func (sl *t0Slot) drop(tp string) {
	for i, x := range sl.subs {
		if x == tp {
			n := len(sl.subs) - 1
			sl.subs[i] = sl.subs[n]
			sl.subs = sl.subs[:n]
			return
		}
	}
}

// t0Handler runs the clients' commands on the event loop: "U topic id"
// (UnsubscribeOnLoop), "S topic id" (Subscribe from the loop) and
// "C id" (Close from the loop), each answered with the message id.
func t0Handler(h *recHandler) {
	h.msg = func(c *Conn, _ codec.OpCode, p []byte) {
		f := strings.Fields(string(p))
		switch f[0] {
		case "U":
			h.srv.UnsubscribeOnLoop(c, f[1])
			_ = c.WriteMessage(codec.OpText, t0Payload(f[2]))
		case "S":
			_ = h.srv.Subscribe(c, f[1])
			_ = c.WriteMessage(codec.OpText, t0Payload(f[2]))
		case "C":
			_ = c.Close(codec.StatusCode(4002), "")
		}
	}
}

// TestReviewT0Model drives ~20 real clients on 127.0.0.1 through a
// random, seeded sequence of Subscribe, Unsubscribe (queued, from the
// test), UnsubscribeOnLoop and Subscribe from the loop (asked by the
// client), publications to 6 topics, broadcasts, and closes (the
// client's close frame, Conn.Close from the test and from the loop, a
// peer's RST) of connections subscribed to none, one or many topics,
// each replaced by a new client. Topics empty and come back. Every client
// must read exactly the messages of the topics it was subscribed to when
// they were published, and the broadcasts, in order; every so often a
// broadcast sentinel is awaited and the loops' subscription structures
// and Stats().Subscriptions are checked against the model, with closed
// connections in no topic. Variants: plain; permessage-deflate with
// server context takeover (shared streams) and a short HistoryIdle (the
// idle release drops connExt); SlowConflate; SlowDropNewest.
func TestReviewT0Model(t *testing.T) {
	dfl := func() *deflate.Config {
		return &deflate.Config{ServerContextTakeover: true, HistoryIdle: 200 * time.Millisecond}
	}
	cases := []struct {
		name   string
		seeds  uint64
		opts   Options
		offers []string
	}{
		{"plain", 2, Options{}, []string{""}},
		{"deflate", 1, Options{Deflate: dfl()}, []string{"permessage-deflate", "", "permessage-deflate; server_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover", "permessage-deflate; client_max_window_bits"}},
		{"conflate", 1, Options{Deflate: dfl(), SlowPolicy: SlowConflate}, []string{"permessage-deflate", ""}},
		{"dropnewest", 1, Options{Deflate: dfl(), SlowPolicy: SlowDropNewest}, []string{"permessage-deflate", ""}},
	}
	for _, tc := range cases {
		for seed := uint64(1); seed <= tc.seeds; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", tc.name, seed), func(t *testing.T) {
				t0Model(t, tc.opts, tc.offers, seed)
			})
		}
	}
}

func t0Model(t *testing.T, o Options, offers []string, seed uint64) {
	const (
		nSlots = 20
		steps  = 400
	)
	rng := rand.New(rand.NewPCG(seed, 7))
	h := &recHandler{}
	t0Handler(h)
	o.PingInterval, o.IdleTimeout, o.NumLoops = -1, -1, 2
	s, addr := startRec(t, h, o)
	topics := []string{"t0", "t1", "t2", "t3", "t4", "t5"}

	var log []string
	logf := func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
	logs := func() string {
		if len(log) > 60 {
			return "last operations: " + strings.Join(log[len(log)-60:], "; ")
		}
		return "operations: " + strings.Join(log, "; ")
	}
	opened := 0
	gen := 0
	dial := func(i int) *t0Slot {
		gen++
		r := newT0Client(t, addr, offers[gen%len(offers)])
		k := opened
		waitFor(t, "open", func() bool { return h.conn(k) != nil })
		opened++
		return &t0Slot{r: r, c: h.conn(k), name: fmt.Sprintf("slot %d gen %d (%q)", i, gen, offers[gen%len(offers)])}
	}
	slots := make([]*t0Slot, nSlots)
	for i := range slots {
		slots[i] = dial(i)
	}
	var dead []*Conn
	closes, firstOfMany, closeMany, idleDropped := 0, 0, 0, 0
	seq := 0
	newID := func(kind string) string {
		seq++
		return fmt.Sprintf("%s%d", kind, seq)
	}
	quiesce := func() {
		id := newID("Q")
		if err := s.Broadcast(codec.OpText, t0Payload(id)); err != nil {
			t.Fatal(err)
		}
		for _, sl := range slots {
			sl.want = append(sl.want, id)
		}
		for _, sl := range slots {
			t0Wait(t, sl.r, sl.want, sl.name, logs)
		}
		subs := map[*Conn][]string{}
		for _, sl := range slots {
			subs[sl.c] = sl.subs
		}
		t0Check(t, s, subs, dead)
		logf("sync")
	}
	// closed waits for the OnClose of sl's connection and checks that the
	// client read nothing more than it had to, then replaces it.
	closed := func(i int, byServer bool) {
		sl := slots[i]
		closes++
		waitFor(t, "OnClose", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.closes) >= closes
		})
		if byServer {
			select {
			case <-sl.r.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: the reader did not end", sl.name)
			}
			sl.r.mu.Lock()
			err, cl := sl.r.err, sl.r.closed
			sl.r.mu.Unlock()
			if err != nil || !cl {
				t.Fatalf("%s: closed %v, err %v", sl.name, cl, err)
			}
		}
		if got := sl.r.ids(); len(got) != len(sl.want) {
			t.Fatalf("%s: read %d messages after the sync; want %d: %v", sl.name, len(got), len(sl.want), got)
		}
		dead = append(dead, sl.c)
		slots[i] = dial(i)
	}
	// Start dense: each client on 1 to 5 topics, in random order.
	for i, sl := range slots {
		for _, j := range rng.Perm(len(topics))[:1+rng.IntN(5)] {
			if err := s.Subscribe(sl.c, topics[j]); err != nil {
				t.Fatal(err)
			}
			sl.subs = append(sl.subs, topics[j])
			logf("subscribe %d %s", i, topics[j])
		}
	}
	quiesce()
	start := time.Now()
	for step := 0; step < steps && time.Since(start) < 20*time.Second; step++ {
		i := rng.IntN(nSlots)
		sl := slots[i]
		tp := topics[rng.IntN(len(topics))]
		if len(sl.subs) > 0 && rng.IntN(3) > 0 {
			tp = sl.subs[rng.IntN(len(sl.subs))] // often the first
			if rng.IntN(2) == 0 {
				tp = sl.subs[0]
			}
		}
		switch k := rng.IntN(100); {
		case k < 30:
			id := newID("m" + tp + "-")
			t0Publish(t, s, tp, id)
			for _, x := range slots {
				if x.has(tp) {
					x.want = append(x.want, id)
				}
			}
			logf("publish %s %s", tp, id)
		case k < 33:
			id := newID("b")
			if err := s.Broadcast(codec.OpText, t0Payload(id)); err != nil {
				t.Fatal(err)
			}
			for _, x := range slots {
				x.want = append(x.want, id)
			}
			logf("broadcast %s", id)
		case k < 58:
			if err := s.Subscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			if !sl.has(tp) {
				sl.subs = append(sl.subs, tp)
			}
			logf("subscribe %d %s", i, tp)
		case k < 75:
			if tp == sl.subs0() && len(sl.subs) > 1 {
				firstOfMany++
			}
			if err := s.Unsubscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.drop(tp)
			logf("unsubscribe %d %s", i, tp)
		case k < 83, k < 86:
			// Asked by the client: the sync first, so that no publication
			// is still in the inbox when the loop acts.
			quiesce()
			id := newID("A")
			verb := "U"
			if k >= 83 {
				verb = "S"
			}
			sl.r.send(t, verb+" "+tp+" "+id)
			sl.want = append(sl.want, id)
			t0Wait(t, sl.r, sl.want, sl.name, logs)
			if verb == "U" {
				if tp == sl.subs0() && len(sl.subs) > 1 {
					firstOfMany++
				}
				sl.drop(tp)
			} else if !sl.has(tp) {
				sl.subs = append(sl.subs, tp)
			}
			logf("%s on loop %d %s", verb, i, tp)
		case k < 92:
			quiesce()
			if len(sl.subs) > 1 {
				closeMany++
			}
			switch how := rng.IntN(4); how {
			case 0:
				sl.r.closeByClient(t, 4001)
				logf("client close %d (%d topics)", i, len(sl.subs))
				closed(i, false)
			case 1:
				if err := sl.c.Close(4000, "bye"); err != nil {
					t.Fatal(err)
				}
				logf("server close %d (%d topics)", i, len(sl.subs))
				closed(i, true)
			case 2:
				sl.r.send(t, "C x")
				logf("loop close %d (%d topics)", i, len(sl.subs))
				closed(i, true)
			default:
				sl.r.reset(t)
				logf("reset %d (%d topics)", i, len(sl.subs))
				closed(i, false)
			}
		case k < 98:
			quiesce()
		default:
			if o.Deflate != nil {
				// Idle past HistoryIdle: the idle release may drop connExt.
				time.Sleep(400 * time.Millisecond)
				var mu sync.Mutex
				onLoops(s, func(ls *loopState) {
					ls.wheel.each(func(c *Conn) {
						if c.t0.t != nil && c.ext == nil && c.rflags&rDeflate != 0 {
							mu.Lock()
							idleDropped++
							mu.Unlock()
						}
					})
				})
				logf("idle")
			}
		}
	}
	quiesce()
	for _, sl := range slots {
		if len(sl.subs) > 0 {
			tp := sl.subs[0]
			if err := s.Unsubscribe(sl.c, tp); err != nil {
				t.Fatal(err)
			}
			sl.drop(tp)
		}
	}
	quiesce()
	t.Logf("%d closes (%d with several topics), %d messages, %d removals of the first of several topics; "+
		"after idle periods, %d deflate connections on one topic without connExt",
		closes, closeMany, seq, firstOfMany, idleDropped)
}

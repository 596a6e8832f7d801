//go:build !windows

package loop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// A stalled subscriber and a fast one share every drain: the fast one is
// staged at each drain's first publication, the stalled one falls behind
// and its policy applies. Once the stalled one reads, what it got is an
// increasing run of the publications (no duplicate, none reordered, each
// intact and inflating with its window), ending in 1008 for
// SlowDisconnect; the fast one got all of them in order. The accounting
// settles: PendingBytes back to 0, the send budget all returned,
// Delivered + Dropped = what was published (drop policies).
func TestReviewStageSlowPolicies(t *testing.T) {
	for _, p := range []SlowPolicy{SlowDropNewest, SlowDropOldest, SlowDisconnect} {
		for _, offer := range []string{"", "permessage-deflate"} {
			t.Run(fmt.Sprintf("policy%d/offer=%q", p, offer), func(t *testing.T) {
				stageSlow(t, p, offer)
			})
		}
	}
}

func stageSlow(t *testing.T, policy SlowPolicy, offer string) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{
		PingInterval: -1, IdleTimeout: -1, FragmentSize: 1000, CloseTimeout: time.Minute,
		MaxMessageSize: 64 << 10, MaxPendingBytes: 1 << 20, HighWaterBytes: 48 << 10,
		SocketSendBuffer: 8 << 10, SlowPolicy: policy,
		Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Minute},
	})
	slow := dialZ(t, addr, offer, 4<<10)
	waitFor(t, "open", func() bool { return h.conn(0) != nil })
	fast := dialZ(t, addr, offer, 0)
	waitFor(t, "open", func() bool { return h.conn(1) != nil })
	cs, cf := h.conn(0), h.conn(1)
	for _, c := range []*Conn{cs, cf} {
		if err := s.Subscribe(c, "t"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 2 })
	rf := startStageReader(fast)

	const n = 1500
	// Mostly incompressible-ish content varies per message; size ~1.5 KB,
	// every 50th 20 KB (over the staging bound).
	payload := func(i int) []byte {
		size := 1500
		if i%50 == 0 {
			size = 20000
		}
		b := stageMsg("m"+strconv.Itoa(i), size)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := len(b) / 2; j < len(b); j++ {
			b[j] = "0123456789abcdef"[r.IntN(16)]
		}
		return b
	}
	for i := range n {
		pm, err := s.Prepare(codec.OpBinary, payload(i), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			// The fast reader keeps up: it is never behind, so each
			// drain stages for it, while the stalled one falls behind.
			waitFor(t, "the fast reader", func() bool { return len(rf.data()) > i || rf.failed() })
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(rf.data()) < n {
		if time.Now().After(deadline) {
			rf.mu.Lock()
			err := rf.err
			rf.mu.Unlock()
			d := rf.data()
			last := ""
			if len(d) > 0 {
				last = d[len(d)-1].String()
			}
			st := s.Stats()
			t.Fatalf("the fast reader read %d of %d (last %s, err %v); its PendingBytes %d; stalled %d; stats %+v",
				len(d), n, last, err, cf.PendingBytes(), cs.PendingBytes(), st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ps := cs.PendingBytes()
	st := s.Stats()
	t.Logf("stalled: PendingBytes %d; stats delivered %d dropped %d slowClosed %d budget %d",
		ps, st.Delivered, st.Dropped, st.SlowClosed, st.SendBudgetUsed)

	// The stalled reader now reads all.
	rs := startStageReader(slow)
	if policy != SlowDisconnect {
		// Read until nothing more comes, then close.
		last := -1
		for {
			time.Sleep(300 * time.Millisecond)
			k := len(rs.data())
			if k == last {
				break
			}
			last = k
		}
		waitFor(t, "stalled PendingBytes to settle", func() bool { return cs.PendingBytes() == 0 })
		_ = cs.Close(4000, "end")
	}
	_ = cf.Close(4000, "end")
	<-rs.done
	<-rf.done

	check := func(name string, r *stageReader, all bool) (got int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
		prev := -1
		for j, m := range r.got {
			switch m.op {
			case codec.OpClose:
				code, _, _ := codec.ParseClose(m.p)
				want := codec.StatusCode(4000)
				if name == "stalled" && policy == SlowDisconnect {
					want = codec.StatusPolicyViolation
				}
				if code != want || j != len(r.got)-1 {
					t.Errorf("%s: close %v at %d of %d; want %v last", name, code, j, len(r.got), want)
				}
				continue
			case codec.OpPing:
				continue
			}
			id := m.String()
			k, err := strconv.Atoi(strings.TrimPrefix(id, "m"))
			if err != nil || k <= prev || all && k != prev+1 {
				t.Fatalf("%s: message %d is %q after m%d", name, j, id, prev)
			}
			if !bytes.Equal(m.p, payload(k)) {
				t.Fatalf("%s: %s damaged", name, id)
			}
			prev = k
			got++
		}
		return got
	}
	nf := check("fast", rf, true)
	ns := check("stalled", rs, false)
	t.Logf("fast read %d, stalled read %d of %d", nf, ns, n)
	if nf != n {
		t.Errorf("fast read %d of %d", nf, n)
	}
	st = s.Stats()
	switch policy {
	case SlowDropNewest:
		if st.Delivered+st.Dropped != 2*n || int64(nf+ns) != st.Delivered {
			t.Errorf("read %d; delivered %d, dropped %d of %d published", nf+ns, st.Delivered, st.Dropped, 2*n)
		}
	case SlowDropOldest:
		if st.Delivered != 2*n || int64(nf+ns) != st.Delivered-st.Dropped {
			t.Errorf("read %d; delivered %d, dropped %d of %d published", nf+ns, st.Delivered, st.Dropped, 2*n)
		}
	}
	if policy == SlowDisconnect && st.SlowClosed != 1 {
		t.Errorf("slow closed %d; want 1", st.SlowClosed)
	}
	waitFor(t, "connections to end", func() bool { return s.Conns() == 0 })
	if u := s.Stats().SendBudgetUsed; u != 0 {
		t.Errorf("send budget used %d after every connection ended", u)
	}
	assertStagedCleared(t, s)
}

//go:build !windows

package loop

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// After its drains, a published PreparedMessage is no longer held by the
// loop: staged (the subscribers were idle) or queued, once delivered it
// can be collected.
func TestReviewStageNoRetention(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1,
		Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Minute}})
	rs, _ := subscribeStageReaders(t, s, h, addr, altOffers(4), func(int) string { return "t" })
	var refs []weak.Pointer[PreparedMessage]
	for round := range 5 {
		pm, err := s.Prepare(codec.OpText, stageMsg("R"+strconv.Itoa(round), 2000), "")
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, weak.Make(pm))
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
		if round%2 == 0 {
			if err := s.BroadcastPrepared(pm); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "delivery", func() bool {
		for _, r := range rs {
			if len(r.data()) < 8 {
				return false
			}
		}
		return true
	})
	assertStagedCleared(t, s)
	// Each of the 4 subscribers was handed 8 messages, staged or queued.
	if out := s.Stats().MessagesOut; out != 32 {
		t.Errorf("MessagesOut %d; want 32", out)
	}
	for i := 0; ; i++ {
		runtime.GC()
		live := 0
		for _, r := range refs {
			if r.Value() != nil {
				live++
			}
		}
		if live == 0 {
			break
		}
		if i == 20 {
			t.Fatalf("%d of %d published messages still reachable after their drains", live, len(refs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range h.conns {
		_ = c.Close(4000, "end")
	}
	for _, r := range rs {
		<-r.done
		if r.err != nil {
			t.Error(r.err)
		}
	}
}

// A large WriteMessage that gnet has only partly (a slow reader, the
// message fragmented): a publication made then must not be staged in
// front of the rest of it; the reader gets the whole write, then the
// publication, then a later write.
func TestReviewStagePublishBehindPartialWrite(t *testing.T) {
	for _, offer := range []string{"", "permessage-deflate"} {
		t.Run(fmt.Sprintf("offer=%q", offer), func(t *testing.T) {
			h := &recHandler{}
			s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1, FragmentSize: 4 << 10,
				SocketSendBuffer: 8 << 10, CloseTimeout: time.Minute,
				Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Minute}})
			z := dialZ(t, addr, offer, 4<<10)
			waitFor(t, "open", func() bool { return h.conn(0) != nil })
			c := h.conn(0)
			if err := s.Subscribe(c, "t"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 1 })
			// 1.2 MB that does not compress much: more than gnet is
			// given at once.
			big := make([]byte, 1200<<10)
			for i := range big {
				big[i] = "0123456789abcdef"[(i*7919+i/13)%16]
			}
			copy(big, "BIG|")
			if err := c.WriteUncompressed(codec.OpBinary, big); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "part of it with gnet", func() bool { q, ob := queued(s, c); return q > 0 && ob > 0 })
			pm, _ := s.Prepare(codec.OpText, stageMsg("P", 1000), "")
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(codec.OpText, stageMsg("W", 900)); err != nil {
				t.Fatal(err)
			}
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
			r := startStageReader(z)
			waitFor(t, "messages", func() bool { return len(r.data()) >= 4 || r.failed() })
			_ = c.Close(4000, "end")
			<-r.done
			if r.err != nil {
				t.Fatal(r.err)
			}
			var got []string
			for _, m := range r.got {
				got = append(got, m.String())
			}
			if fmt.Sprint(got) != "[BIG P W P close 4000]" {
				t.Fatalf("read %v", got)
			}
			if d := r.data(); !bytes.Equal(d[0].p, big) {
				t.Fatal("the large message is damaged")
			}
		})
	}
}

// Several goroutines at once: a publisher (Publish to two topics and
// Broadcast, the same PreparedMessages again and again) and, per
// connection, a writer alternating WriteMessage and WriteUncompressed
// and pinging, on two loops, with and without deflate. What one goroutine
// sent reaches each connection in its order, once; every message
// inflates with the client's window.
func TestReviewStageConcurrentSources(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{NumLoops: 2, PingInterval: -1, IdleTimeout: -1, FragmentSize: 1500,
		Deflate: &deflate.Config{ServerContextTakeover: true, Threshold: -1, HistoryIdle: time.Minute}})
	offers := []string{"", "permessage-deflate", "permessage-deflate; server_no_context_takeover",
		"permessage-deflate; server_max_window_bits=10", "", "permessage-deflate"}
	rs, conns := subscribeStageReaders(t, s, h, addr, offers, func(i int) string { return "t" + strconv.Itoa(i%2) })
	const rounds = 300
	var pms []*PreparedMessage
	for j, size := range []int{60, 900, 5000} {
		pm, _ := s.Prepare(codec.OpText, stageMsg("P"+strconv.Itoa(j), size), "")
		pms = append(pms, pm)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // publisher: "P<j>" payloads; order is told by a follow-up Broadcast
		defer wg.Done()
		for k := range rounds {
			pm := pms[k%len(pms)]
			_ = s.Publish("t"+strconv.Itoa(k%2), pm)
			_ = s.Broadcast(codec.OpBinary, stageMsg("B"+strconv.Itoa(k), 200+k%3*700))
		}
	}()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				p := stageMsg("W"+strconv.Itoa(k), 100+k%4*800)
				var err error
				if k%2 == 0 {
					err = c.WriteMessage(codec.OpBinary, p)
				} else {
					err = c.WriteUncompressed(codec.OpBinary, p)
				}
				if err != nil {
					t.Errorf("conn %d write %d: %v", i, k, err)
					return
				}
				if k%10 == 0 {
					_ = c.Ping([]byte("k" + strconv.Itoa(k)))
				}
			}
		}()
	}
	wg.Wait()
	for i, r := range rs {
		waitFor(t, "all messages", func() bool { return len(r.data()) >= 2*rounds+rounds/2 || r.failed() })
		_ = conns[i].Close(4000, "end")
	}
	for i, r := range rs {
		<-r.done
		if r.err != nil {
			t.Errorf("client %d (%q): %v", i, offers[i], r.err)
			continue
		}
		var nb, nw, np int
		for _, m := range r.data() {
			id := m.String()
			switch {
			case strings.HasPrefix(id, "B"):
				if id != "B"+strconv.Itoa(nb) || !bytes.Equal(m.p, stageMsg(id, 200+nb%3*700)) {
					t.Fatalf("client %d: %s after %d broadcasts", i, id, nb)
				}
				nb++
			case strings.HasPrefix(id, "W"):
				if id != "W"+strconv.Itoa(nw) || !bytes.Equal(m.p, stageMsg(id, 100+nw%4*800)) {
					t.Fatalf("client %d: %s after %d writes", i, id, nw)
				}
				nw++
			case strings.HasPrefix(id, "P"):
				// The publication of round k (to this client's topic)
				// comes after broadcast k-1 and before broadcast k.
				k := nb
				if k%2 != i%2 || id != "P"+strconv.Itoa(k%3) {
					t.Fatalf("client %d: %s after %d broadcasts", i, id, nb)
				}
				np++
			default:
				t.Fatalf("client %d: unexpected %q", i, id)
			}
		}
		if nb != rounds || nw != rounds || np != rounds/2 {
			t.Errorf("client %d: %d broadcasts, %d writes, %d publications", i, nb, nw, np)
		}
	}
	assertStagedCleared(t, s)
}

//go:build !windows

package loop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// stageReader reads a zClient until its close frame, answers it and
// checks that nothing follows.
type stageReader struct {
	z    *zClient
	mu   sync.Mutex
	got  []zMsg
	err  error
	done chan struct{}
}

func startStageReader(z *zClient) *stageReader {
	r := &stageReader{z: z, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			m, err := z.next(20 * time.Second)
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			r.mu.Lock()
			r.got = append(r.got, m)
			r.mu.Unlock()
			if m.op == codec.OpClose {
				// Answer, then nothing more may come but the end.
				_, _ = z.c.Write(cf(true, codec.OpClose, m.p))
				err := afterClose(z.c, z.br)
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
		}
	}()
	return r
}

// failed reports whether the reader stopped on an error.
func (r *stageReader) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

// data returns the data messages read so far.
func (r *stageReader) data() []zMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d []zMsg
	for _, m := range r.got {
		if m.op == codec.OpText || m.op == codec.OpBinary {
			d = append(d, m)
		}
	}
	return d
}

// A random mix of publications (the same PreparedMessages over and over,
// to several topics and to all), broadcasts, WriteMessage and
// WriteUncompressed, pings and finally Close, from one goroutine, with the
// loop held for some runs of them (so that they meet in one drain) and
// free for others: every client must read exactly the messages meant for
// it, in the order they were made, each inflating with its own window,
// its close frame last. Clients with and without permessage-deflate, with
// and without server context takeover, with a small window; messages
// below and above the staging bound, fragmented.
func TestReviewStageModel(t *testing.T) {
	for _, threshold := range []int{0, -1} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("threshold%d/seed%d", threshold, seed), func(t *testing.T) {
				stageModel(t, threshold, seed)
			})
		}
	}
}

func stageModel(t *testing.T, threshold int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	h := &recHandler{}
	s, addr := startRec(t, h, Options{
		PingInterval: -1, IdleTimeout: -1, FragmentSize: 700,
		Deflate: &deflate.Config{ServerContextTakeover: true, Threshold: threshold, HistoryIdle: time.Minute},
	})
	offers := []string{
		"",
		"permessage-deflate",
		"permessage-deflate; server_no_context_takeover",
		"permessage-deflate; server_max_window_bits=9",
		"permessage-deflate; client_max_window_bits",
		"",
	}
	topics := [][]string{{"a"}, {"b"}, {"a", "b"}, {"a", "b", "c"}, {"c"}, {"a", "c"}}
	n := len(offers)
	zs := make([]*zClient, n)
	conns := make([]*Conn, n)
	for i, o := range offers {
		zs[i] = dialZ(t, addr, o, 0)
		waitFor(t, "open", func() bool { return h.conn(i) != nil })
		conns[i] = h.conn(i)
		for _, tp := range topics[i] {
			if err := s.Subscribe(conns[i], tp); err != nil {
				t.Fatal(err)
			}
		}
	}
	nsubs := 0
	for _, x := range topics {
		nsubs += len(x)
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == int64(nsubs) })
	readers := make([]*stageReader, n)
	for i := range zs {
		readers[i] = startStageReader(zs[i])
	}
	ls := firstLoop(s)

	payload := map[string][]byte{}
	sizes := []int{40, 700, 3000, 20000}
	pool := make([]*PreparedMessage, len(sizes))
	for i, size := range sizes {
		id := fmt.Sprintf("P%d", i)
		payload[id] = stageMsg(id, size)
		op := codec.OpText
		if i%2 == 1 {
			op = codec.OpBinary
		}
		pm, err := s.Prepare(op, payload[id], "")
		if err != nil {
			t.Fatal(err)
		}
		pool[i] = pm
	}
	want := make([][]string, n)
	pings := make([]map[string]bool, n)
	for i := range pings {
		pings[i] = map[string]bool{}
	}
	subscribed := func(i int, tp string) bool {
		for _, x := range topics[i] {
			if x == tp {
				return true
			}
		}
		return false
	}
	var release func()
	var log []string
	quiesce := func() {
		for i, r := range readers {
			deadline := time.Now().Add(10 * time.Second)
			for len(r.data()) < len(want[i]) {
				if time.Now().After(deadline) {
					var got []string
					for _, m := range r.data() {
						got = append(got, m.String())
					}
					t.Fatalf("client %d (%q) read %d messages of %d:\n got %v\nwant %v\noperations: %v",
						i, offers[i], len(got), len(want[i]), got, want[i], log)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	for op := range 300 {
		switch k := rng.IntN(100); {
		case k < 8:
			if release == nil {
				release = holdLoop(t, ls)
				log = append(log, "hold")
			} else {
				release()
				release = nil
				log = append(log, "release")
			}
		case k < 10:
			if release != nil {
				release()
				release = nil
			}
			quiesce()
			log = append(log, "quiesce")
		case k < 40:
			tp := []string{"a", "b", "c"}[rng.IntN(3)]
			j := rng.IntN(len(pool))
			if err := s.Publish(tp, pool[j]); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if subscribed(i, tp) {
					want[i] = append(want[i], fmt.Sprintf("P%d", j))
				}
			}
			log = append(log, fmt.Sprintf("publish %s P%d", tp, j))
		case k < 48:
			j := rng.IntN(len(pool))
			if err := s.BroadcastPrepared(pool[j]); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				want[i] = append(want[i], fmt.Sprintf("P%d", j))
			}
			log = append(log, fmt.Sprintf("broadcast P%d", j))
		case k < 54:
			id := fmt.Sprintf("B%d", op)
			payload[id] = stageMsg(id, sizes[rng.IntN(len(sizes))])
			if err := s.Broadcast(codec.OpText, payload[id]); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				want[i] = append(want[i], id)
			}
			log = append(log, "broadcast "+id)
		case k < 90:
			i := rng.IntN(n)
			id := fmt.Sprintf("W%d", op)
			payload[id] = stageMsg(id, sizes[rng.IntN(len(sizes))])
			var err error
			if rng.IntN(2) == 0 {
				err = conns[i].WriteMessage(codec.OpBinary, payload[id])
			} else {
				err = conns[i].WriteUncompressed(codec.OpBinary, payload[id])
			}
			if err != nil {
				t.Fatalf("write %s to %d: %v", id, i, err)
			}
			want[i] = append(want[i], id)
			log = append(log, fmt.Sprintf("write %s to %d", id, i))
		default:
			i := rng.IntN(n)
			id := fmt.Sprintf("p%d", op)
			if err := conns[i].Ping([]byte(id)); err != nil {
				t.Fatalf("ping %d: %v", i, err)
			}
			pings[i][id] = true
			log = append(log, fmt.Sprintf("ping %s to %d", id, i))
		}
	}
	for i := range n {
		if err := conns[i].Close(codec.StatusCode(4000+i), "end"); err != nil {
			t.Fatal(err)
		}
	}
	if release != nil {
		release()
	}
	for i, r := range readers {
		<-r.done
		r.mu.Lock()
		got, err := r.got, r.err
		r.mu.Unlock()
		if err != nil {
			t.Errorf("client %d (%q): %v", i, offers[i], err)
		}
		var data []string
		seen := map[string]bool{}
		for j, m := range got {
			switch m.op {
			case codec.OpPing:
				if !pings[i][string(m.p)] || seen[string(m.p)] {
					t.Errorf("client %d: unexpected ping %q", i, m.p)
				}
				seen[string(m.p)] = true
			case codec.OpClose:
				if code, _, _ := codec.ParseClose(m.p); code != codec.StatusCode(4000+i) || j != len(got)-1 {
					t.Errorf("client %d: close %v at %d of %d", i, code, j, len(got))
				}
			default:
				id := m.String()
				if !bytes.Equal(m.p, payload[id]) {
					t.Errorf("client %d: message %d (%s) damaged", i, len(data), id)
				}
				data = append(data, id)
			}
		}
		if len(seen) != len(pings[i]) {
			t.Errorf("client %d: %d pings of %d", i, len(seen), len(pings[i]))
		}
		if len(got) == 0 || got[len(got)-1].op != codec.OpClose {
			t.Errorf("client %d: no close frame at the end", i)
		}
		if fmt.Sprint(data) != fmt.Sprint(want[i]) {
			t.Errorf("client %d (%q):\n got %v\nwant %v", i, offers[i], data, want[i])
		}
	}
	if t.Failed() {
		t.Logf("operations: %v", log)
	}
	assertStagedCleared(t, s)
}

// altOffers returns n extension offers, none and permessage-deflate in
// turn.
func altOffers(n int) []string {
	offers := make([]string, n)
	for i := 1; i < n; i += 2 {
		offers[i] = "permessage-deflate"
	}
	return offers
}

// subscribeStageReaders dials a client per offer to addr (h having seen
// no connection before), subscribes the i-th to topic(i), starts a
// stageReader on each and waits for all the subscriptions.
func subscribeStageReaders(t *testing.T, s *Server, h *recHandler, addr string, offers []string,
	topic func(i int) string) ([]*stageReader, []*Conn) {
	t.Helper()
	var rs []*stageReader
	var conns []*Conn
	for i, o := range offers {
		z := dialZ(t, addr, o, 0)
		waitFor(t, "open", func() bool { return h.conn(i) != nil })
		conns = append(conns, h.conn(i))
		if err := s.Subscribe(h.conn(i), topic(i)); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, startStageReader(z))
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == int64(len(offers)) })
	return rs, conns
}

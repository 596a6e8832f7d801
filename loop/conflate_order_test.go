//go:build !windows

package loop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// rawMsg is a message as read off the wire: its type, whether its first
// frame had RSV1 (compressed), its payload and its frame count.
type rawMsg struct {
	op     codec.OpCode
	rsv1   bool
	p      []byte
	frames int
}

// nextRaw reads one data message, skipping control frames.
func (w *wsClient) nextRaw(timeout time.Duration) (rawMsg, error) {
	w.c.SetReadDeadline(time.Now().Add(timeout))
	var m rawMsg
	for {
		h, p, _, err := readFrame(w.br)
		if err != nil {
			return m, err
		}
		if h.OpCode.IsControl() {
			continue
		}
		if h.OpCode != codec.OpContinuation {
			m.op, m.rsv1 = h.OpCode, h.Rsv&codec.Rsv1 != 0
		} else if h.Rsv != 0 {
			return m, fmt.Errorf("continuation frame with RSV %x", h.Rsv)
		}
		m.frames++
		m.p = append(m.p, p...)
		if h.Fin {
			return m, nil
		}
	}
}

// conflateMsg is a test message: "g<global order> k<key>|w <filler>",
// the filler a function of g so that a damaged message shows.
func conflateMsg(g int, key string, size int) []byte {
	b := []byte(fmt.Sprintf("g%d %s ", g, key))
	for len(b) < size {
		b = append(b, byte('a'+(g+len(b))%7))
	}
	return b
}

func parseConflateMsg(p []byte) (g int, key string, err error) {
	f := strings.SplitN(string(p), " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "g") {
		return 0, "", fmt.Errorf("bad message %.40q", p)
	}
	if g, err = strconv.Atoi(f[0][1:]); err != nil {
		return 0, "", err
	}
	if want := conflateMsg(g, f[1], len(p)); !bytes.Equal(p, want) {
		return 0, "", fmt.Errorf("message g%d damaged: %.60q", g, p)
	}
	return g, f[1], nil
}

// A conflating connection behind a stalled reader gets keyed values of
// varying sizes (longer and shorter than the one they replace), in
// several frames each, mixed with messages written with WriteMessage;
// then the reader reads everything. Every message must arrive whole
// (and inflate alone, or with the stream's history under context
// takeover), every key's values in order ending with its latest, every
// written message in order, and no message may overtake a written one
// that was decided before it, nor the reverse (one order per connection).
func TestConflateReplaceOrder(t *testing.T) {
	cases := []struct {
		name string
		dfl  *deflate.Config
	}{
		{"plain", nil},
		{"deflate", &deflate.Config{}},
		{"takeover", &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Minute}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
			s, addr := startRec(t, h, Options{SlowPolicy: SlowConflate, FragmentSize: 125,
				SocketSendBuffer: 4096, PingInterval: -1, IdleTimeout: -1, Deflate: tc.dfl})
			req := upgradeRequest
			if tc.dfl != nil {
				req = withDeflateOffer(req)
			}
			w := dialWSRequest(t, addr, req, 2048)
			waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
			c := h.conn(0)
			const keys, n = 7, 3000
			g := 0
			latest := map[string]int{}
			for ; g < n; g++ {
				switch {
				case g%97 == 50:
					if err := c.WriteMessage(codec.OpText, conflateMsg(g, "w", 20+g%150)); err != nil {
						t.Fatal(err)
					}
				default:
					key := "k" + strconv.Itoa(g%keys)
					pm, err := s.Prepare(codec.OpText, conflateMsg(g, key, 10+(g*37)%700), key)
					if err != nil {
						t.Fatal(err)
					}
					if err := s.Publish("t", pm); err != nil {
						t.Fatal(err)
					}
					latest[key] = g
				}
				if g%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			st := s.Stats()
			var hist deflate.History
			dec := deflate.NewDecompressor()
			p := deflate.Params{ClientContextTakeover: tc.dfl != nil && tc.dfl.ServerContextTakeover}
			ord := newOrderCheck()
			last := ord.last
			got, multi := 0, 0
			for {
				m, err := w.nextRaw(2 * time.Second)
				if err != nil {
					break
				}
				got++
				if m.frames > 1 {
					multi++
				}
				if m.rsv1 {
					if m.p, err = dec.AppendDecompress(nil, m.p, 1<<20, p, &hist); err != nil {
						t.Fatalf("message %d does not inflate: %v", got, err)
					}
				}
				mg, key, err := parseConflateMsg(m.p)
				if err != nil {
					t.Fatalf("message %d: %v", got, err)
				}
				ord.see(t, mg, key)
			}
			t.Logf("read %d messages (%d in several frames); stats %+v", got, multi, st)
			if st.Conflated == 0 {
				t.Errorf("nothing conflated: the connection was never behind")
			}
			for key, want := range latest {
				if last[key] != want {
					t.Errorf("key %s ended at g%d; want its latest g%d", key, last[key], want)
				}
			}
			if want := n - 1 - (n-1-50)%97; last["w"] != want {
				t.Errorf("last written message g%d; want g%d", last["w"], want)
			}
		})
	}
}

// BenchmarkFanoutOneWindowed publishes keyed 200-byte messages (2,000
// keys) to 20 subscribers that read everything, beside one conflating
// subscriber that reads one message every 2 ms and so is held to its in-flight window
// with more than sendAllowance queued. writes/msg is the process's write
// ns/op is per message published: a drain must still flush each
// connection once per batch, not once per message because one connection
// is windowed (SendBudgetUsed > 0 shows it held more than sendAllowance).
func BenchmarkFanoutOneWindowed(b *testing.B) {
	const subs, size, keys = 20, 200, 2000
	o := Options{SlowPolicy: SlowConflate, MaxPendingBytes: 64 << 20, HighWaterBytes: 32 << 20}
	s, _, addr := startSubServer(b, serverPolicy, o)
	slow := dialWS(b, addr, 2048)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, _, err := slow.next(10 * time.Second); err != nil {
				return
			}
		}
	}()
	cs := make([]*wsClient, subs)
	for i := range cs {
		cs[i] = dialWS(b, addr, 0)
	}
	for s.Stats().Subscriptions != subs+1 {
		time.Sleep(time.Millisecond)
	}
	// Fill the stalled one's queue past its allowance.
	for i := range 2 * keys {
		pm, _ := s.Prepare(codec.OpBinary, seqMsg(i, size), strconv.Itoa(i%keys))
		_ = s.Publish("t", pm)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := 0; want < 2*keys+b.N; want++ {
				if _, _, err := c.next(10 * time.Second); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	b.ResetTimer()
	for i := range b.N {
		pm, _ := s.Prepare(codec.OpBinary, seqMsg(i, size), strconv.Itoa(i%keys))
		if err := s.Publish("t", pm); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	st := s.Stats()
	b.Logf("delivered %d conflated %d, send budget used %d", st.Delivered, st.Conflated, st.SendBudgetUsed)
}

// A reader that was slow once and then keeps up must be treated as one
// that keeps up: when a burst comes it gets every message, as a reader
// that was never slow does ("a client that keeps up gets every
// message"). Both subscribers read everything after the first phase; the
// first stopped reading for a while before.
func TestWindowRecovers(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{SlowPolicy: SlowConflate, PingInterval: -1, IdleTimeout: -1})
	once := dialWS(t, addr, 4096)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	never := dialWS(t, addr, 4096)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 2 })
	const keys, size = 10, 100
	g := 0
	pub := func() {
		pm, _ := s.Prepare(codec.OpBinary, seqMsg(g, size), strconv.Itoa(g%keys))
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
		g++
	}
	// The first subscriber does not read for 1.5 s of 200 messages a second.
	var wg sync.WaitGroup
	got := make([][]int, 2)
	read := func(i int, w *wsClient) {
		defer wg.Done()
		for {
			_, p, err := w.next(2 * time.Second)
			if err != nil {
				return
			}
			got[i] = append(got[i], int(binary.BigEndian.Uint64(p)))
		}
	}
	wg.Add(1)
	go read(1, never)
	for range 300 {
		pub()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Add(1)
	go read(0, once)
	// Both read; the publisher goes on at 200 a second for 2 s.
	for range 400 {
		pub()
		time.Sleep(5 * time.Millisecond)
	}
	burst := g
	for range 5000 {
		pub()
	}
	wg.Wait()
	for i, name := range []string{"once slow", "never slow"} {
		n := 0
		for _, seq := range got[i] {
			if seq >= burst {
				n++
			}
		}
		t.Logf("%s: %d of the burst's %d messages", name, n, g-burst)
		if n != g-burst {
			t.Errorf("%s: got %d of the burst's %d messages (conflated %d in all)", name, n, g-burst, s.Stats().Conflated)
		}
	}
}

// A conflating reader that keeps up gets every message of bursts larger
// than one flush (maxFlush) that come after quiet periods: the interval
// between bursts measures the publisher, not the reader, and must not
// hold it to a window.
func TestWindowBursts(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{SlowPolicy: SlowConflate, PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	const keys, size, burst, bursts = 10, 100, 4000, 5
	var wg sync.WaitGroup
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, _, err := w.next(3 * time.Second); err != nil {
				return
			}
			n++
		}
	}()
	g := 0
	for range bursts {
		for range burst {
			pm, _ := s.Prepare(codec.OpBinary, seqMsg(g, size), strconv.Itoa(g%keys))
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
			g++
		}
		time.Sleep(1200 * time.Millisecond)
	}
	wg.Wait()
	if st := s.Stats(); n != g {
		t.Errorf("a reader that keeps up got %d of %d messages (conflated %d, dropped %d)", n, g, st.Conflated, st.Dropped)
	}
}

// Switching a behind connection's policy between SlowConflate and the
// dropping ones mid-stream leaves no stale conflation state: every
// message arrives whole, keys never go back, written messages all arrive
// in order and nothing overtakes them.
func TestConflatePolicySwitch(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{SlowPolicy: SlowConflate, FragmentSize: 125, HighWaterBytes: 32 << 10,
		SocketSendBuffer: 4096, PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 2048)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	c := h.conn(0)
	policies := []SlowPolicy{SlowDropOldest, SlowConflate, SlowDropNewest, SlowConflate}
	const keys, n = 7, 4000
	for g := range n {
		switch {
		case g%300 == 150:
			p := policies[g/300%len(policies)]
			onLoops(s, func(ls *loopState) {
				if c.ls == ls {
					c.SetSlowPolicy(p)
				}
			})
		case g%97 == 50:
			if err := c.WriteMessage(codec.OpText, conflateMsg(g, "w", 20+g%150)); err != nil {
				t.Fatal(err)
			}
		default:
			key := "k" + strconv.Itoa(g%keys)
			pm, _ := s.Prepare(codec.OpText, conflateMsg(g, key, 10+(g*37)%700), key)
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
		}
		if g%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	ord := newOrderCheck()
	last := ord.last
	got := 0
	for {
		m, err := w.nextRaw(2 * time.Second)
		if err != nil {
			break
		}
		got++
		mg, key, err := parseConflateMsg(m.p)
		if err != nil {
			t.Fatalf("message %d: %v", got, err)
		}
		ord.see(t, mg, key)
	}
	st := s.Stats()
	t.Logf("read %d; conflated %d dropped %d", got, st.Conflated, st.Dropped)
	if want := n - 1 - (n-1-50)%97; last["w"] != want {
		t.Errorf("last written message g%d; want g%d", last["w"], want)
	}
}

// orderCheck follows the messages a conflating client reads, numbered g
// in publication order with their key ("w" for WriteMessage ones): a
// written message is overtaken by nothing published after it, and a key
// never goes back.
type orderCheck struct {
	last        map[string]int // latest g per key
	lastW, maxG int
}

func newOrderCheck() *orderCheck { return &orderCheck{last: map[string]int{}, lastW: -1, maxG: -1} }

func (o *orderCheck) see(t *testing.T, g int, key string) {
	t.Helper()
	if g < o.lastW {
		t.Errorf("g%d (%s) arrived after the written message g%d", g, key, o.lastW)
	}
	if key == "w" {
		if g < o.maxG {
			t.Errorf("written message g%d arrived after g%d, published after it", g, o.maxG)
		}
		o.lastW = g
	} else if prev, ok := o.last[key]; ok && g <= prev {
		t.Errorf("key %s went from g%d to g%d", key, prev, g)
	}
	o.last[key] = g
	o.maxG = max(o.maxG, g)
}

//go:build !windows

package loop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// tickGen makes realistic market-data JSON ticks of 100–200 bytes: a few
// instruments, prices on a random walk, sizes and ids that change.
type tickGen struct {
	r     *rand.Rand
	price [4]float64
	id    int
}

var tickSyms = [4]string{"BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD"}

func newTickGen(seed uint64) *tickGen {
	return &tickGen{r: rand.New(rand.NewPCG(seed, 7)), price: [4]float64{97123.5, 3612.25, 231.875, 2.4125}}
}

// next returns a tick, with head (e.g. a topic and sequence number) as its
// first field.
func (g *tickGen) next(head string) []byte {
	i := g.r.IntN(len(tickSyms))
	g.price[i] *= 1 + (g.r.Float64()-0.5)/500
	g.id++
	p := g.price[i]
	switch g.r.IntN(3) {
	case 0:
		return fmt.Appendf(nil, `{%s"type":"trade","s":"%s","p":"%.2f","q":"%.4f","side":"%s","id":%d,"t":%d}`,
			head, tickSyms[i], p, g.r.Float64()*3, [2]string{"buy", "sell"}[g.r.IntN(2)], 81234567+g.id,
			1764925200123+int64(g.id)*37)
	case 1:
		return fmt.Appendf(nil, `{%s"type":"quote","s":"%s","bid":"%.2f","bq":"%.4f","ask":"%.2f","aq":"%.4f","t":%d}`,
			head, tickSyms[i], p*0.9999, g.r.Float64()*5, p*1.0001, g.r.Float64()*5, 1764925200123+int64(g.id)*37)
	}
	return fmt.Appendf(nil, `{%s"type":"ticker","s":"%s","last":"%.2f","vol24h":"%.3f","chg":"%.2f%%","t":%d}`,
		head, tickSyms[i], p, 12345+g.r.Float64()*100, (g.r.Float64()-0.5)*4, 1764925200123+int64(g.id)*37)
}

// inflateClient is a WebSocket client that inflates what it receives with
// the standard library's compress/flate, not the server's code, keeping
// the window RFC 7692 gives it: with context takeover the last
// 2^server_max_window_bits bytes it inflated (a reference farther back
// fails), without it nothing.
type inflateClient struct {
	c        net.Conn
	br       *bufio.Reader
	takeover bool
	window   int
	hist     []byte
	wire     int    // bytes of the frames read
	ext      string // the server's Sec-WebSocket-Extensions answer
}

// dialInflate upgrades with offer as the permessage-deflate offer ("" for
// none) and checks the answer.
func dialInflate(t *testing.T, addr, offer string) *inflateClient {
	t.Helper()
	ic := dialInflateBuf(t, addr, offer, 0)
	if (ic.ext != "") != (offer != "") {
		t.Fatalf("offer %q answered %q", offer, ic.ext)
	}
	return ic
}

// dialInflateBuf upgrades with offer as the permessage-deflate offer (""
// for none) without checking the answer; rcvbuf > 0 sets SO_RCVBUF.
func dialInflateBuf(t *testing.T, addr, offer string, rcvbuf int) *inflateClient {
	t.Helper()
	c, br := dialSend(t, addr, withExtOffer(upgradeRequest, offer), rcvbuf)
	ic := &inflateClient{c: c, br: br, window: 1 << 15}
	ext, _ := readUpgradeHeader(t, br)
	ic.ext = ext
	if ext != "" {
		ic.takeover = !strings.Contains(ext, "server_no_context_takeover")
		var bits int
		if i := strings.Index(ext, "server_max_window_bits="); i >= 0 {
			fmt.Sscanf(ext[i+len("server_max_window_bits="):], "%d", &bits)
			ic.window = 1 << bits
		}
	}
	return ic
}

// next reads one message and inflates it if RSV1 is set on its first
// frame.
func (ic *inflateClient) next(timeout time.Duration) (codec.OpCode, []byte, bool, error) {
	ic.c.SetReadDeadline(time.Now().Add(timeout))
	var msg []byte
	var op codec.OpCode
	var rsv1 bool
	for {
		h, p, n, err := readFrame(ic.br)
		if err != nil {
			return 0, nil, false, err
		}
		ic.wire += n + len(p)
		if h.OpCode.IsControl() {
			if h.OpCode == codec.OpClose {
				return codec.OpClose, p, false, nil
			}
			continue
		}
		if h.OpCode != codec.OpContinuation {
			op, rsv1 = h.OpCode, h.Rsv&codec.Rsv1 != 0
		}
		msg = append(msg, p...)
		if h.Fin {
			break
		}
	}
	if !rsv1 {
		return op, msg, false, nil
	}
	var dict []byte
	if ic.takeover {
		dict = ic.hist
	}
	// RFC 7692 §7.2.2: append 00 00 ff ff; then an empty final block so
	// that the reader ends cleanly.
	in := append(msg, 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
	out, err := io.ReadAll(flate.NewReaderDict(bytes.NewReader(in), dict))
	if err != nil {
		return op, nil, true, fmt.Errorf("inflate (window %d, %d bytes of history): %w", ic.window, len(dict), err)
	}
	if ic.takeover {
		ic.hist = append(ic.hist, out...)
		if len(ic.hist) > ic.window {
			ic.hist = append(ic.hist[:0], ic.hist[len(ic.hist)-ic.window:]...)
		}
	}
	return op, out, true, nil
}

// openRec records the connections the server opens, in order.
type openRec struct {
	nopHandler
	conns chan *Conn
}

func (h openRec) OnOpen(c *Conn) { h.conns <- c }

// sharedClient is one subscriber of TestSharedStreamWire and what it saw.
type sharedClient struct {
	name   string
	ic     *inflateClient
	conn   *Conn
	err    error
	got    map[string][]int // topic → sequence numbers received
	aBytes int              // their payload bytes
	zMsgs  int              // messages of topic "a" received compressed
}

// TestSharedStreamWire publishes market-data ticks to subscribers with
// every server window size from 8 to 15 bits, with and without context
// takeover and without deflate, among them late joiners, connections
// that leave and come back, connections on two topics and one that is
// also written to directly, with broadcasts in between; every client
// inflates every compressed message with the standard library's
// inflater and its own window, and must get every message it is owed,
// byte for byte and in order. Subscribers of one topic only, with
// takeover, must get the topic's ticks at under half their size (without
// shared streams they would get them at about their full size: a 100–200
// byte tick does not compress without history).
func TestSharedStreamWire(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 2, Deflate: &deflate.Config{ServerContextTakeover: true}}
	s, addr := startServer(t, h, o, nil)

	var clients []*sharedClient
	dial := func(name, offer string, topics ...string) *sharedClient {
		sc := &sharedClient{name: name, ic: dialInflate(t, addr, offer), got: map[string][]int{}}
		sc.conn = <-h.conns
		for _, tp := range topics {
			if err := s.Subscribe(sc.conn, tp); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, sc)
		return sc
	}
	var stable []*sharedClient // on "a" only, with takeover, from the start
	for bits := 8; bits <= 15; bits++ {
		for i := range 3 {
			sc := dial(fmt.Sprintf("a%d/%d", bits, i), fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits), "a")
			stable = append(stable, sc)
		}
	}
	for i := range 3 {
		stable = append(stable, dial(fmt.Sprintf("a/%d", i), "permessage-deflate", "a"))
	}
	dial("a-nctx", "permessage-deflate; server_no_context_takeover", "a")
	dial("a-plain", "", "a")
	two := []*sharedClient{
		dial("ab/15", "permessage-deflate", "a", "b"),
		dial("ab/9", "permessage-deflate; server_max_window_bits=9", "a", "b"),
	}
	direct := dial("a-direct", "permessage-deflate; server_max_window_bits=12", "a")
	leavers := []*sharedClient{
		dial("a-leave/15", "permessage-deflate", "a"),
		dial("a-leave/10", "permessage-deflate; server_max_window_bits=10", "a"),
	}
	idle := dial("none", "permessage-deflate") // broadcasts only

	var wg sync.WaitGroup
	read := func(sc *sharedClient) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, p, z, err := sc.ic.next(time.Minute) // a whole burst is compressed before it is flushed: slow with -race
				if err != nil {
					sc.err = err
					return
				}
				var tp string
				var seq int
				if _, err := fmt.Sscanf(string(p), `{"topic":%q,"seq":%d,`, &tp, &seq); err != nil {
					sc.err = fmt.Errorf("message %.60q: %v", p, err)
					return
				}
				if want := sent(tp, seq); !bytes.Equal(p, want) {
					sc.err = fmt.Errorf("%s %d: got %.80q…; want %.80q…", tp, seq, p, want)
					return
				}
				if tp == "end" {
					return
				}
				sc.got[tp] = append(sc.got[tp], seq)
				if tp == "a" {
					sc.aBytes += len(p)
					if z {
						sc.zMsgs++
					}
				}
			}
		}()
	}
	for _, sc := range clients {
		read(sc)
	}

	const n = 600
	g := newTickGen(1)
	pub := func(tp string, seq int) {
		p := g.next(fmt.Sprintf(`"topic":%q,"seq":%d,`, tp, seq))
		if tp == "a" && seq%53 == 20 {
			// A book snapshot of 1–7 KB among the ticks: larger than
			// the smaller windows (and than half of them).
			p = p[:len(p)-1]
			for j := range 10 + seq%60 {
				p = fmt.Appendf(p, `,"l%d":[%d.%02d,%d]`, j, 97000+j*3, (seq+j)%100, j*seq%977)
			}
			p = append(p, '}')
		}
		record(tp, seq, p)
		var err error
		switch tp {
		case "bcast", "end":
			err = s.Broadcast(codec.OpText, p)
		case "direct":
			err = direct.conn.WriteMessage(codec.OpText, p)
		default:
			pm, perr := s.Prepare(codec.OpText, p, "")
			if perr != nil {
				t.Fatal(perr)
			}
			err = s.Publish(tp, pm)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var late []*sharedClient
	nb, nc, nd := 0, 0, 0
	for i := range n {
		switch i {
		case 150:
			onLoops(s, func(*loopState) {}) // the loops are not busy (-race)
			for bits := 9; bits <= 15; bits += 3 {
				sc := dial(fmt.Sprintf("late%d", bits), fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits), "a")
				late = append(late, sc)
				read(sc)
			}
		case 250:
			for _, sc := range leavers {
				if err := s.Unsubscribe(sc.conn, "a"); err != nil {
					t.Fatal(err)
				}
			}
		case 320:
			for _, sc := range leavers {
				if err := s.Subscribe(sc.conn, "a"); err != nil {
					t.Fatal(err)
				}
			}
		}
		pub("a", i)
		if i%5 == 2 {
			pub("b", nb)
			nb++
		}
		if i%97 == 40 {
			pub("bcast", nc)
			nc++
		}
		if i%11 == 3 {
			pub("direct", nd)
			nd++
		}
	}
	pub("end", 0)
	wg.Wait()

	count := func(sc *sharedClient, tp string, from, to int) {
		t.Helper()
		seqs := sc.got[tp]
		for i, seq := range seqs {
			if i > 0 && seq <= seqs[i-1] {
				t.Errorf("%s: %s %d after %d", sc.name, tp, seq, seqs[i-1])
				return
			}
		}
		if len(seqs) != to-from || len(seqs) > 0 && (seqs[0] != from || seqs[len(seqs)-1] != to-1) {
			t.Errorf("%s: got %d messages of %s (first %v); want %d to %d", sc.name, len(seqs), tp, seqs[:min(len(seqs), 1)], from, to-1)
		}
	}
	for _, sc := range clients {
		if sc.err != nil {
			t.Errorf("%s: %v", sc.name, sc.err)
			continue
		}
		if strings.HasPrefix(sc.name, "late") {
			count(sc, "bcast", 2, nc) // the broadcasts from message 234 on
		} else {
			count(sc, "bcast", 0, nc)
		}
		switch {
		case sc == idle:
			count(sc, "a", 0, 0)
		case sc == leavers[0] || sc == leavers[1]:
			seqs := sc.got["a"]
			if len(seqs) < 500 || len(seqs) > 530 {
				t.Errorf("%s: %d messages of a; want 600 less the ~70 published while it was away", sc.name, len(seqs))
			}
		case strings.HasPrefix(sc.name, "late"):
			seqs := sc.got["a"]
			if len(seqs) < 440 || seqs[len(seqs)-1] != n-1 {
				t.Errorf("%s: %d messages of a ending at %v; want those from its subscription (~150) to %d", sc.name, len(seqs), seqs[len(seqs)-1:], n-1)
			}
		default:
			count(sc, "a", 0, n)
		}
	}
	for _, sc := range two {
		count(sc, "b", 0, nb)
	}
	count(direct, "direct", 0, nd)

	var z, plain int
	for _, sc := range stable {
		z += sc.ic.wire
		plain += sc.aBytes
		if sc.zMsgs < n*9/10 {
			t.Errorf("%s: %d of %d ticks compressed", sc.name, sc.zMsgs, n)
		}
	}
	// The stable clients' wire bytes include the broadcasts (uncompressible
	// without history) and control frames: the ratio is a bound for ticks.
	ratio := float64(z) / float64(plain)
	t.Logf("%d single-topic takeover subscribers: %d wire bytes for %d bytes of ticks (%.3f)", len(stable), z, plain, ratio)
	for _, sc := range append(append(late, two...), direct, leavers[0], clients[len(stable)]) {
		t.Logf("%-10s wire %6d for %6d B of a, %d of %d compressed", sc.name, sc.ic.wire, sc.aBytes, sc.zMsgs, len(sc.got["a"]))
	}
	if ratio > 0.5 {
		t.Errorf("single-topic takeover subscribers got ticks at %.3f of their size; want ≤ 0.5", ratio)
	}
	for _, sc := range late {
		if float64(sc.ic.wire) > 0.6*float64(sc.aBytes) {
			t.Errorf("%s: wire %d for %d bytes of ticks: the late joiner did not join its stream", sc.name, sc.ic.wire, sc.aBytes)
		}
	}
}

// The messages TestSharedStreamWire sent, by topic and sequence number.
var (
	sentMu   sync.Mutex
	sentMsgs = map[string]map[int][]byte{}
)

func record(tp string, seq int, p []byte) {
	sentMu.Lock()
	defer sentMu.Unlock()
	if sentMsgs[tp] == nil {
		sentMsgs[tp] = map[int][]byte{}
	}
	sentMsgs[tp][seq] = p
}

func sent(tp string, seq int) []byte {
	sentMu.Lock()
	defer sentMu.Unlock()
	return sentMsgs[tp][seq]
}

// policyHandler subscribes every connection to "t" and sets the policy a
// connection names in a message.
type policyHandler struct {
	openRec
	srv  *Server
	last *Conn // the last opened, read after its OnOpen
}

func (h *policyHandler) OnOpen(c *Conn) {
	_ = h.srv.Subscribe(c, "t")
	h.last = c
	h.openRec.OnOpen(c)
}

func (h *policyHandler) OnMessage(c *Conn, _ codec.OpCode, p []byte) {
	if string(p) == "drop-oldest" {
		c.SetSlowPolicy(SlowDropOldest)
	}
	_ = c.WriteUncompressed(codec.OpText, []byte("ok")) // window unchanged
}

// TestSharedStreamDrops: members of a stream that stop reading lose
// messages (SlowDropNewest drops new ones; a member switched to
// SlowDropOldest mid-stream drops queued ones), and what they do get
// must still inflate, with the standard library's inflater, to exactly
// the messages sent, in order: a frame compressed with the stream's
// History must never reach a client that lacks what it refers to, and a
// frame that a later one refers to must never be dropped.
func TestSharedStreamDrops(t *testing.T) {
	h := &policyHandler{openRec: openRec{conns: make(chan *Conn, 1)}}
	o := Options{NumLoops: 1, SlowPolicy: SlowDropNewest, HighWaterBytes: 64 << 10, SocketSendBuffer: 8 << 10,
		Deflate: &deflate.Config{ServerContextTakeover: true}}
	s, addr := startServer(t, h, o, func(s *Server) { h.srv = s })
	dialSlow := func(offer string) *inflateClient {
		req := strings.Replace(upgradeRequest, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+offer+"\r\n\r\n", 1)
		w := dialWSRequest(t, addr, req, 4096)
		<-h.conns
		return &inflateClient{c: w.c, br: w.br, takeover: true, window: 1 << 15}
	}
	fast, newest := dialSlow("permessage-deflate"), dialSlow("permessage-deflate")
	oldest := dialSlow("permessage-deflate")
	oldestConn := h.last
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 3 })

	g := newTickGen(2)
	seq := 0
	pub := func() {
		p := g.next(fmt.Sprintf(`"topic":"t","seq":%d,`, seq))
		record("t", seq, p)
		seq++
		pm, _ := s.Prepare(codec.OpText, p, "")
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex // the fast reader has its goroutine
	last := map[*inflateClient]int{fast: -1, newest: -1, oldest: -1}
	got := map[*inflateClient]int{}
	readTick := func(ic *inflateClient, timeout time.Duration) error {
		_, p, _, err := ic.next(timeout)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if string(p) == "ok" {
			return nil
		}
		var tp string
		var n int
		if _, err := fmt.Sscanf(string(p), `{"topic":%q,"seq":%d,`, &tp, &n); err != nil {
			return fmt.Errorf("message %.60q: %v", p, err)
		}
		if want := sent(tp, n); !bytes.Equal(p, want) || n <= last[ic] {
			return fmt.Errorf("message %d after %d: got %.60q; want %.60q", n, last[ic], p, want)
		}
		last[ic] = n
		got[ic]++
		return nil
	}
	for range 100 {
		pub()
	}
	for _, ic := range []*inflateClient{fast, newest, oldest} {
		for range 100 {
			if err := readTick(ic, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The two slow ones stop reading while 20,000 more ticks go out; the
	// fast one reads them.
	done := make(chan error, 1)
	go func() {
		for { // until it is read up (it may lose some too: a small buffer)
			if err := readTick(fast, 2*time.Second); err != nil {
				if isTimeout(err) {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	burst := func(n int) {
		for i := range n { // more than gnet takes (~512 KiB), compressed
			pub()
			if i%200 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	// Until the last one is behind with 16 KiB of the stream's frames
	// queued (gnet holding what it takes), short of the high-water mark:
	// nothing dropped yet.
	queued := func() (n int) {
		onLoops(s, func(*loopState) {
			oldestConn.mu.Lock()
			n = oldestConn.q.queued()
			oldestConn.mu.Unlock()
		})
		return n
	}
	for queued() < 16<<10 {
		burst(100)
	}
	if d := s.Stats().Dropped; d != 0 {
		t.Fatalf("%d dropped before the policy switch", d)
	}
	// It becomes SlowDropOldest, and more ticks come: the queued frames
	// must not be dropped (later ones refer to them).
	frame := codec.AppendFrame(nil, codec.Header{Fin: true, OpCode: codec.OpText, Masked: true}, []byte("drop-oldest"))
	if _, err := oldest.c.Write(frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policy switch", func() bool {
		return countConns(s, func(c *Conn) bool { return c.policy == uint8(SlowDropOldest) }) == 1
	})
	// Enough to pass the mark and drop some of its oldest messages, not
	// all of the stream's frames queued: it then reads what is left.
	burst(500)
	onLoops(s, func(*loopState) {})
	readUp := func(ic *inflateClient) {
		for {
			if err := readTick(ic, time.Second); err != nil {
				if !isTimeout(err) {
					t.Fatalf("slow reader: %v", err)
				}
				return
			}
		}
	}
	readUp(oldest)
	if s.Stats().Dropped == 0 {
		t.Fatal("nothing dropped after the policy switch")
	}
	burst(5000)                     // now the drop-newest one drops too
	onLoops(s, func(*loopState) {}) // every tick is queued or dropped
	if err := <-done; err != nil {
		t.Fatalf("fast reader: %v", err)
	}
	dropped := s.Stats().Dropped
	readUp(newest)
	readUp(oldest)
	t.Logf("fast %d, drop-newest %d, drop-oldest %d of %d ticks; %d dropped", got[fast], got[newest], got[oldest], seq, dropped)
	if dropped == 0 || got[newest] == seq || got[oldest] == seq {
		t.Fatalf("nothing dropped: the test tests nothing")
	}
	// A reader that lost messages rejoins its stream once its window is
	// the stream's again (4 KiB of ticks, about 30): of 300 more ticks,
	// the last 100 reach it compressed with history.
	for range 300 {
		pub()
	}
	onLoops(s, func(*loopState) {})
	for range 200 {
		if err := readTick(newest, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	newest.wire = 0
	size := 0
	for i := seq - 100; i < seq; i++ {
		size += len(sent("t", i))
	}
	for range 100 {
		if err := readTick(newest, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if ratio := float64(newest.wire) / float64(size); ratio > 0.5 {
		t.Errorf("after its drops: %d wire bytes for %d bytes of ticks (%.2f); the reader did not rejoin", newest.wire, size, ratio)
	}
}

// TestSharedBroadcast: connections that get only broadcasts share the
// loop's broadcast stream: each decodes every tick with the standard
// library's inflater and its own window, at under half the ticks' size
// (but with a 256-byte window).
func TestSharedBroadcast(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	s, addr := startServer(t, h, Options{NumLoops: 2, Deflate: &deflate.Config{ServerContextTakeover: true}}, nil)
	var clients []*inflateClient
	for i := range 8 {
		offer := "permessage-deflate"
		if i%2 == 1 {
			offer += fmt.Sprintf("; server_max_window_bits=%d", 8+i/2)
		}
		clients = append(clients, dialInflate(t, addr, offer))
		<-h.conns
	}
	g := newTickGen(4)
	const n = 200
	var ticks [][]byte
	size := 0
	for i := range n {
		p := g.next(fmt.Sprintf(`"seq":%d,`, i))
		ticks = append(ticks, p)
		size += len(p)
		if err := s.Broadcast(codec.OpText, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, ic := range clients {
		for i := range n {
			_, p, _, err := ic.next(5 * time.Second)
			if err != nil {
				t.Fatalf("window %d: tick %d: %v", ic.window, i, err)
			}
			if !bytes.Equal(p, ticks[i]) {
				t.Fatalf("window %d: tick %d = %.60q; want %.60q", ic.window, i, p, ticks[i])
			}
		}
		limit := 0.45
		if ic.window < 512 {
			limit = 0.6 // a 256-byte history holds about two ticks
		}
		if ratio := float64(ic.wire) / float64(size); ratio > limit {
			t.Errorf("window %d: %.3f wire bytes per byte of tick; want ≤ %.2f", ic.window, ratio, limit)
		} else {
			t.Logf("window %5d: %.3f wire bytes per byte of tick", ic.window, ratio)
		}
	}
}

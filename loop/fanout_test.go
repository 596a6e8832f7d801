//go:build !windows

package loop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// wsClient is a minimal WebSocket client over a real socket, for the
// fan-out tests: it upgrades, then reads server frames.
type wsClient struct {
	c  net.Conn
	br *bufio.Reader
}

// dialWS upgrades a connection to addr; rcvbuf > 0 sets SO_RCVBUF before
// connecting (a small one makes a client that stops reading stall the
// server quickly).
func dialWS(t testing.TB, addr string, rcvbuf int) *wsClient {
	t.Helper()
	return dialWSRequest(t, addr, upgradeRequest, rcvbuf)
}

// dialWSRequest is dialWS with the upgrade request req.
func dialWSRequest(t testing.TB, addr, req string, rcvbuf int) *wsClient {
	t.Helper()
	c, br := dialSend(t, addr, req, rcvbuf)
	readUpgradeHeader(t, br)
	return &wsClient{c: c, br: br}
}

// next reads one message (reassembling fragments); a close frame is
// returned as op OpClose with its payload.
func (w *wsClient) next(timeout time.Duration) (codec.OpCode, []byte, error) {
	w.c.SetReadDeadline(time.Now().Add(timeout))
	var msg []byte
	var op codec.OpCode
	for {
		h, p, _, err := readFrame(w.br)
		if err != nil {
			return 0, nil, err
		}
		if h.OpCode.IsControl() {
			if h.OpCode == codec.OpClose {
				return codec.OpClose, p, nil
			}
			continue
		}
		if h.OpCode != codec.OpContinuation {
			op = h.OpCode
		}
		msg = append(msg, p...)
		if h.Fin {
			return op, msg, nil
		}
	}
}

// subHandler subscribes every connection to "t" and records closes.
type subHandler struct {
	srv    *Server
	policy SlowPolicy // set with Conn.SetSlowPolicy unless it is 0xff
	mu     sync.Mutex
	opened []*Conn
	closes []*CloseError
}

// serverPolicy in subHandler.policy: the connections keep the server's
// Options.SlowPolicy.
const serverPolicy SlowPolicy = 0xff

func (h *subHandler) OnOpen(c *Conn) {
	if h.policy != serverPolicy {
		c.SetSlowPolicy(h.policy)
	}
	if err := h.srv.Subscribe(c, "t"); err != nil {
		panic(err)
	}
	h.mu.Lock()
	h.opened = append(h.opened, c)
	h.mu.Unlock()
}
func (h *subHandler) OnMessage(*Conn, codec.OpCode, []byte) {}
func (h *subHandler) OnClose(_ *Conn, err error) {
	h.mu.Lock()
	h.closes = append(h.closes, err.(*CloseError))
	h.mu.Unlock()
}

func (h *subHandler) nOpen() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.opened)
}

func startSubServer(t testing.TB, policy SlowPolicy, o Options) (*Server, *subHandler, string) {
	t.Helper()
	h := &subHandler{policy: policy}
	o.NumLoops = 2
	s, addr := startServer(t, h, o, func(s *Server) { h.srv = s })
	return s, h, addr
}

// seqMsg is a message whose first 8 bytes are its sequence number.
func seqMsg(seq, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint64(p, uint64(seq))
	for i := 8; i < size; i++ {
		p[i] = byte(seq + i)
	}
	return p
}

func checkSeqMsg(p []byte, size int) (int, error) {
	if len(p) != size {
		return 0, fmt.Errorf("message of %d bytes; want %d", len(p), size)
	}
	seq := int(binary.BigEndian.Uint64(p))
	for i := 8; i < size; i++ {
		if p[i] != byte(seq+i) {
			return seq, fmt.Errorf("message %d: byte %d corrupt", seq, i)
		}
	}
	return seq, nil
}

// Every subscriber receives every published message exactly once and in
// order; a connection that is not subscribed receives none; Broadcast
// reaches everyone.
func TestPublishInOrder(t *testing.T) {
	s, h, addr := startSubServer(t, SlowDisconnect, Options{})
	const subs, msgs, size = 40, 300, 300
	clients := make([]*wsClient, subs)
	for i := range clients {
		clients[i] = dialWS(t, addr, 0)
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == subs })
	if err := s.Publish("other", mustPrepare(t, s, []byte("not for t"))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < msgs; i++ {
		pm, err := s.Prepare(codec.OpBinary, seqMsg(i, size), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Broadcast(codec.OpText, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := 0; want < msgs; want++ {
				op, p, err := c.next(5 * time.Second)
				if err != nil {
					t.Errorf("client %d, message %d: %v", i, want, err)
					return
				}
				seq, err := checkSeqMsg(p, size)
				if op != codec.OpBinary || err != nil || seq != want {
					t.Errorf("client %d: got op %v seq %d (%v); want binary seq %d", i, op, seq, err, want)
					return
				}
			}
			if op, p, err := c.next(5 * time.Second); err != nil || op != codec.OpText || string(p) != "bye" {
				t.Errorf("client %d: after the topic's messages got %v %q %v; want the broadcast", i, op, p, err)
			}
		}()
	}
	wg.Wait()
	if st := s.Stats(); st.Delivered != subs*(msgs+1) || st.Dropped != 0 {
		t.Errorf("stats = %+v; want %d delivered, none dropped", st, subs*(msgs+1))
	}
	if h.nOpen() != subs {
		t.Errorf("%d opened; want %d", h.nOpen(), subs)
	}
}

func mustPrepare(t *testing.T, s *Server, p []byte) *PreparedMessage {
	t.Helper()
	pm, err := s.Prepare(codec.OpText, p, "")
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// The slow-consumer policies, with a client that stops reading (tiny
// receive buffer, server send buffer 16 KiB) next to a healthy one.
func TestSlowPolicies(t *testing.T) {
	const (
		size = 2048
		n    = 1500 // 3 MB: far above what the stalled socket holds
		keys = 8
		hw   = 64 << 10
	)
	for _, policy := range []SlowPolicy{SlowDisconnect, SlowDropNewest, SlowDropOldest, SlowConflate} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			// The drop policies come from Options.SlowPolicy; disconnect
			// and conflate are set per connection, overriding a server
			// default of drop-newest.
			o := Options{HighWaterBytes: hw, SocketSendBuffer: 16 << 10, SlowPolicy: policy}
			connPolicy := serverPolicy
			if policy == SlowDisconnect || policy == SlowConflate {
				o.SlowPolicy, connPolicy = SlowDropNewest, policy
			}
			s, h, addr := startSubServer(t, connPolicy, o)
			healthy := dialWS(t, addr, 0)
			stalled := dialWS(t, addr, 4096)
			waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 2 })

			var got []int
			var progress atomic.Int64 // messages the healthy client has read
			done := make(chan struct{})
			go func() { // the healthy client reads everything as it comes
				defer close(done)
				for len(got) == 0 || got[len(got)-1] != n-1 {
					_, p, err := healthy.next(10 * time.Second)
					if err != nil {
						t.Errorf("healthy client: %v after %d messages", err, len(got))
						return
					}
					seq, err := checkSeqMsg(p, size)
					if err != nil {
						t.Error(err)
						return
					}
					got = append(got, seq)
					progress.Store(int64(seq + 1))
				}
			}()
			maxPending := 0
			for i := 0; i < n; i++ {
				pm, err := s.Prepare(codec.OpBinary, seqMsg(i, size), fmt.Sprint("k", i%keys))
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Publish("t", pm); err != nil {
					t.Fatal(err)
				}
				if i%8 == 7 {
					// Pace the publisher to the healthy client: it is never
					// more than 8 messages (16 KiB) behind, far below the mark.
					waitFor(t, "the healthy client", func() bool { return progress.Load() > int64(i)-8 })
					h.mu.Lock()
					for _, c := range h.opened {
						maxPending = max(maxPending, c.PendingBytes())
					}
					h.mu.Unlock()
				}
			}
			<-done
			for i, seq := range got {
				// Under conflation even the healthy client may skip a value
				// when it falls behind for a moment (16 KiB send buffer).
				if seq != i && (policy != SlowConflate || i > 0 && seq <= got[i-1]) {
					t.Fatalf("healthy client: message %d has seq %d; want every message in order", i, seq)
				}
			}
			// The stalled peer never made us hold more than the high-water
			// mark plus one message, plus what gnet holds (< 512 KiB).
			if limit := hw + size + 512<<10; maxPending > limit {
				t.Errorf("pending bytes reached %d; want <= %d", maxPending, limit)
			}
			st := s.Stats()
			t.Logf("%v: %+v, max pending %d", policy, st, maxPending)

			if policy == SlowDisconnect {
				waitFor(t, "the slow consumer's close", func() bool {
					h.mu.Lock()
					defer h.mu.Unlock()
					return len(h.closes) > 0
				})
				h.mu.Lock()
				defer h.mu.Unlock()
				if len(h.closes) != 1 || h.closes[0].Code != codec.StatusPolicyViolation || h.closes[0].Err != ErrSlowConsumer {
					t.Errorf("closes = %+v; want one 1008 ErrSlowConsumer", h.closes)
				}
				return
			}
			if policy != SlowConflate && st.Dropped == 0 {
				t.Errorf("%v: nothing dropped for a stalled client", policy)
			}
			// Resume reading: what arrives is in order, without duplicates,
			// and ends with the last message (drop-oldest and conflate keep
			// the newest; drop-newest keeps the oldest).
			var seqs []int
			for {
				_, p, err := stalled.next(time.Second)
				if err != nil {
					break
				}
				seq, err := checkSeqMsg(p, size)
				if err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs, seq)
			}
			if len(seqs) == 0 || len(seqs) >= n {
				t.Fatalf("stalled client got %d messages; want some, not all %d", len(seqs), n)
			}
			switch policy {
			case SlowDropNewest:
				for i := 1; i < len(seqs); i++ {
					if seqs[i] <= seqs[i-1] {
						t.Fatalf("drop-newest: seq %d after %d", seqs[i], seqs[i-1])
					}
				}
			case SlowDropOldest:
				for i := 1; i < len(seqs); i++ {
					if seqs[i] <= seqs[i-1] {
						t.Fatalf("drop-oldest: seq %d after %d", seqs[i], seqs[i-1])
					}
				}
				if seqs[len(seqs)-1] != n-1 {
					t.Errorf("drop-oldest: last message %d; want %d", seqs[len(seqs)-1], n-1)
				}
			case SlowConflate:
				if st.Conflated == 0 {
					t.Errorf("conflate: nothing conflated")
				}
				// The latest value of every key arrives, after any older one.
				last := map[int]int{}
				for _, seq := range seqs {
					if prev, ok := last[seq%keys]; ok && seq <= prev {
						t.Fatalf("conflate: key %d went back from %d to %d", seq%keys, prev, seq)
					}
					last[seq%keys] = seq
				}
				for k := 0; k < keys; k++ {
					if want := n - keys + (k-(n-keys)%keys+keys)%keys; last[k] != want {
						t.Errorf("conflate: key %d ends at %d; want its latest %d", k, last[k], want)
					}
				}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, ce := range h.closes { // at the end of the test: the cleanup's shutdown
				if ce.Code != codec.StatusGoingAway && ce.Code != codec.StatusAbnormalClosure {
					t.Errorf("%v: unexpected close %v", policy, ce)
				}
			}
		})
	}
}

func (p SlowPolicy) String() string {
	return [...]string{"disconnect", "drop-newest", "drop-oldest", "conflate"}[p]
}

// TestBroadcastTakeoverOnce: a broadcast to a connection with server
// context takeover starts its History, which gives the connection a
// release deadline; moving it in the timing wheel while the broadcast
// walks the wheel must not deliver the message to it twice. The case of
// the deadline being a lap away (pings off, or a 2-minute interval) made
// it certain before the fix.
func TestBroadcastTakeoverOnce(t *testing.T) {
	for _, ping := range []time.Duration{-1, 2 * time.Minute} {
		t.Run(ping.String(), func(t *testing.T) {
			o := Options{NumLoops: 1, PingInterval: ping, IdleTimeout: ping,
				Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Second}}
			if ping < 0 {
				o.IdleTimeout = -1
			}
			addr := freeAddr(t)
			s, err := NewServer(nopHandler{}, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(addr); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			time.Sleep(300 * time.Millisecond) // the wheel's clock moves off 0
			w := dialWSRequest(t, addr, withDeflateOffer(upgradeRequest), 0)
			waitFor(t, "connection", func() bool { return s.Conns() == 1 })
			if err := s.Broadcast(codec.OpText, bytes.Repeat([]byte("tick "), 1000)); err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				if _, _, err := w.next(500 * time.Millisecond); err != nil {
					break
				}
				n++
			}
			if n != 1 {
				t.Errorf("the connection got %d copies of one broadcast; want 1", n)
			}
			if d := s.Stats().Delivered; d != 1 {
				t.Errorf("Stats().Delivered = %d; want 1", d)
			}
			// The History the broadcast started is released after
			// HistoryIdle, long before the connection's next ping.
			start := time.Now()
			waitFor(t, "History released", func() bool {
				return countConns(s, func(c *Conn) bool { return c.more() != nil && c.more().dfl != nil }) == 0
			})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("History released after %v; want about HistoryIdle (1 s)", d)
			}
			w.c.Close() // Shutdown need not wait for its close frame
		})
	}
}

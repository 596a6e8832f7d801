//go:build !windows

package loop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// recHandler records connections and closes; hooks are optional.
type recHandler struct {
	mu     sync.Mutex
	conns  []*Conn
	closes []*CloseError
	open   func(s *Server, c *Conn)
	msg    func(c *Conn, op codec.OpCode, p []byte)
	srv    *Server
}

func (h *recHandler) OnOpen(c *Conn) {
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	if h.open != nil {
		h.open(h.srv, c)
	}
}
func (h *recHandler) OnMessage(c *Conn, op codec.OpCode, p []byte) {
	if h.msg != nil {
		h.msg(c, op, p)
	}
}
func (h *recHandler) OnClose(_ *Conn, err error) {
	h.mu.Lock()
	h.closes = append(h.closes, err.(*CloseError))
	h.mu.Unlock()
}
func (h *recHandler) conn(i int) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < len(h.conns) {
		return h.conns[i]
	}
	return nil
}

func startRec(t *testing.T, h *recHandler, o Options) (*Server, string) {
	t.Helper()
	if o.NumLoops == 0 {
		o.NumLoops = 1
	}
	return startServer(t, h, o, func(s *Server) { h.srv = s })
}

// queued returns c's bytes in our queue (not yet handed to gnet) and
// c.q.outbound, read on the loop.
func queued(s *Server, c *Conn) (q, ob int) {
	onLoops(s, func(ls *loopState) {
		if c.ls != ls {
			return
		}
		c.mu.Lock()
		q, ob = c.queuedLocked(), int(c.q.outbound)
		c.mu.Unlock()
	})
	return
}

// PendingBytes counts what gnet still holds; it must fall back to 0 once
// gnet has written it (gnet tells nobody), or a connection that has read
// everything would look pending forever and a later write be refused as a
// slow consumer.
func TestPendingBytesFollowsGnet(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1,
		SocketSendBuffer: 16 << 10, MaxMessageSize: 64 << 10, MaxPendingBytes: 300 << 10})
	w := dialWS(t, addr, 4096)
	waitFor(t, "open", func() bool { return h.conn(0) != nil })
	c := h.conn(0)
	msg := bytes.Repeat([]byte("x"), 200<<10)
	if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	t.Logf("PendingBytes while the client has not read: %d", c.PendingBytes())
	if _, p, err := w.next(5 * time.Second); err != nil || len(p) != len(msg) {
		t.Fatalf("read: %d bytes, %v", len(p), err)
	}
	time.Sleep(time.Second) // everything is in the client's hands now
	q, ob := queued(s, c)
	t.Logf("after the client read all of it: PendingBytes=%d (queue %d, outbound %d, gnet actually holds 0)", c.PendingBytes(), q, ob)
	if c.PendingBytes() != 0 {
		t.Errorf("PendingBytes = %d after the peer read everything; want 0", c.PendingBytes())
	}
	if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
		t.Errorf("second 200 KiB write on an idle, drained connection (MaxPendingBytes 300 KiB): %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	t.Logf("closes: %v", h.closes)
	h.mu.Unlock()
}

// SlowDropOldest drops published messages only: a message queued by
// Conn.WriteMessage is never dropped.
func TestDropOldestKeepsWriteMessage(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{SlowPolicy: SlowDropOldest, HighWaterBytes: 64 << 10,
		SocketSendBuffer: 16 << 10, PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 4096)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	c := h.conn(0)
	const size = 2048
	seq := 0
	pub := func(n int) {
		for i := 0; i < n; i++ {
			pm, _ := s.Prepare(codec.OpBinary, seqMsg(seq, size), "")
			seq++
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Fill gnet and our queue until drop-oldest starts working.
	for s.Stats().Dropped == 0 {
		pub(8)
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.WriteMessage(codec.OpText, []byte("IMPORTANT reply via WriteMessage")); err != nil {
		t.Fatal(err)
	}
	pub(100)
	time.Sleep(300 * time.Millisecond)
	t.Logf("stats %+v", s.Stats())
	found := false
	for {
		op, _, err := w.next(time.Second)
		if err != nil {
			break
		}
		if op == codec.OpText {
			found = true
		}
	}
	if !found {
		t.Errorf("the message written with Conn.WriteMessage never arrived: drop-oldest dropped it")
	}
}

// SlowConflate: a message that replaces its key's queued one is kept even
// above the high-water mark, or the key's latest value would be lost.
func TestConflateKeepsLatestValue(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{SlowPolicy: SlowConflate, HighWaterBytes: 64 << 10,
		SocketSendBuffer: 16 << 10, PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 4096)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	c := h.conn(0)
	seq := 0
	pub := func(key string, p []byte) {
		pm, _ := s.Prepare(codec.OpBinary, p, key)
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	fill := func() { pub(fmt.Sprint("f", seq), seqMsg(seq, 2048)); seq++ }
	// Fill gnet, then put ~16 KiB in our queue.
	for {
		fill()
		time.Sleep(time.Millisecond)
		if q, ob := queued(s, c); ob > 0 && q > 16<<10 {
			break
		}
	}
	pub("k", []byte("k=A, the older value"))
	for s.Stats().Dropped == 0 { // our queue is now near the mark
		fill()
		time.Sleep(time.Millisecond)
	}
	before := s.Stats()
	pub("k", append([]byte("k=B, the latest value "), bytes.Repeat([]byte("."), 8<<10)...))
	time.Sleep(200 * time.Millisecond)
	after := s.Stats()
	t.Logf("stats before %+v after %+v", before, after)
	var ks []string
	for {
		_, p, err := w.next(time.Second)
		if err != nil {
			break
		}
		if bytes.HasPrefix(p, []byte("k=")) {
			ks = append(ks, string(p[:3]))
		}
	}
	t.Logf("values of key k received: %v", ks)
	if len(ks) == 0 {
		t.Errorf("key k: neither the old nor the new value arrived (conflated %d, dropped %d)",
			after.Conflated-before.Conflated, after.Dropped-before.Dropped)
	}
}

// Subscribe takes effect before any message published after it returns,
// also when a drain of the loop's inbox is already scheduled.
func TestSubscribeBeforePublish(t *testing.T) {
	h := &recHandler{}
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		if string(p) == "busy" {
			time.Sleep(300 * time.Millisecond) // a loop busy with other work
		}
	}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	busy := dialWS(t, addr, 0)
	sub := dialWS(t, addr, 0)
	waitFor(t, "open", func() bool { return h.conn(1) != nil })
	var sc *Conn
	for _, c := range []*Conn{h.conn(0), h.conn(1)} {
		if c.RemoteAddr().String() == sub.c.LocalAddr().String() {
			sc = c
		}
	}
	// masked text frame "busy"
	frame := []byte{0x81, 0x84, 1, 2, 3, 4}
	for i, b := range []byte("busy") {
		frame = append(frame, b^[]byte{1, 2, 3, 4}[i%4])
	}
	busy.c.Write(frame)
	time.Sleep(50 * time.Millisecond)
	pub := func(p string) {
		if err := s.Publish("t", mustPrepare(t, s, []byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	pub("m1 (before Subscribe)")
	if err := s.Subscribe(sc, "t"); err != nil {
		t.Fatal(err)
	}
	pub("m2 (after Subscribe returned)")
	_, p, err := sub.next(2 * time.Second)
	t.Logf("subscriber got %q, %v; stats %+v", p, err, s.Stats())
	if err != nil {
		t.Errorf("m2, published after Subscribe returned, was not delivered: %v", err)
	}
}

// Crossed closes: the peer's close frame arrives while ours is still queued
// behind data; the data and then our close frame must still go out whole
// before the TCP connection closes.
func TestCrossedCloseSendsOurs(t *testing.T) {
	chunk := bytes.Repeat([]byte("d"), 64<<10)
	h := &recHandler{}
	h.open = func(_ *Server, c *Conn) {
		for i := 0; i < 30; i++ {
			_ = c.WriteMessage(codec.OpBinary, chunk)
		}
		_ = c.Close(codec.StatusNormalClosure, "bye")
	}
	_, addr := startRec(t, h, Options{SocketSendBuffer: 16 << 10, PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 4096)
	time.Sleep(200 * time.Millisecond)
	// the client closes too (simultaneous close), masked, code 1000
	w.c.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8})
	time.Sleep(300 * time.Millisecond)
	// Read the raw stream to its end and walk its frames.
	w.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	raw, err := io.ReadAll(w.br)
	n, gotClose, off := 0, false, 0
	for off < len(raw) {
		hd, hn, _ := codec.ParseHeader(raw[off:])
		if hn == 0 || off+hn+int(hd.Length) > len(raw) {
			t.Logf("stream ends inside a frame: header %+v at %d, %d bytes left", hd, off, len(raw)-off)
			break
		}
		if hd.OpCode == codec.OpClose {
			gotClose = true
		} else if hd.Fin {
			n++
		}
		off += hn + int(hd.Length)
	}
	t.Logf("read %d bytes then %v: %d whole data messages, close frame %v", len(raw), err, n, gotClose)
	h.mu.Lock()
	t.Logf("server OnClose: %v", h.closes)
	h.mu.Unlock()
	if !gotClose {
		t.Errorf("the server never sent its close frame (RFC 6455 §5.5.1)")
	}
	if n != 30 || off != len(raw) {
		t.Errorf("%d of the 30 queued messages arrived whole, %d bytes of a cut frame; want all of them, nothing cut", n, len(raw)-off)
	}
}

var _ = errors.New

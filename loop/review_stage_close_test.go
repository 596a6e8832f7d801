//go:build !windows

package loop

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// rstHandler runs onClose on the event loop when a connection ends.
type rstHandler struct {
	recHandler
	onClose func(c *Conn)
}

func (h *rstHandler) OnClose(c *Conn, err error) {
	if h.onClose != nil {
		h.onClose(c)
	}
	h.recHandler.OnClose(c, err)
}

// A subscriber that reset its TCP connection while the loop was busy is
// written to by the drain's flush: gnet fails the write and runs OnClose
// in the middle of the flush, while the subscribers after it are still
// staged. What OnClose does to them (a ping, a write, a close, a new
// publication) must come after the staged message, in order; the close
// frame last.
func TestReviewStageResetDuringDrain(t *testing.T) {
	for _, dfl := range []string{"", "permessage-deflate"} {
		t.Run(fmt.Sprintf("offer=%q", dfl), func(t *testing.T) {
			hit := 0
			for attempt := 0; attempt < 5 && hit == 0; attempt++ {
				if stageResetDuringDrain(t, dfl) {
					hit++
				}
				if t.Failed() {
					return
				}
			}
			if hit == 0 {
				t.Log("the reset was never seen inside a drain's flush (the loop saw it first)")
			}
		})
	}
}

func stageResetDuringDrain(t *testing.T, offer string) (inDrain bool) {
	h := &rstHandler{}
	var during atomic.Bool
	var pendingSeen atomic.Int64
	s, addr := startServer(t, h, Options{
		NumLoops: 1, PingInterval: -1, IdleTimeout: -1, FragmentSize: 500,
		Deflate: &deflate.Config{ServerContextTakeover: true, Threshold: -1, HistoryIdle: time.Minute},
	}, func(s *Server) { h.srv = s })
	a := dialZ(t, addr, offer, 0)
	waitFor(t, "open a", func() bool { return h.conn(0) != nil })
	b := dialZ(t, addr, offer, 0)
	waitFor(t, "open b", func() bool { return h.conn(1) != nil })
	c := dialZ(t, addr, offer, 0)
	waitFor(t, "open c", func() bool { return h.conn(2) != nil })
	ca, cb, cc := h.conn(0), h.conn(1), h.conn(2)
	for _, x := range []*Conn{ca, cb, cc} {
		if err := s.Subscribe(x, "t"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 3 })
	rb, rc := startStageReader(b), startStageReader(c)

	pm1, _ := s.Prepare(codec.OpText, stageMsg("M1", 1200), "")
	pm2, _ := s.Prepare(codec.OpText, stageMsg("M2", 1200), "")
	after := stageMsg("W", 800)
	h.onClose = func(x *Conn) {
		if x != ca {
			return
		}
		ls := x.ls
		if ls.staged == nil {
			return // not inside the drain's flush
		}
		during.Store(true)
		pendingSeen.Store(int64(cb.PendingBytes()))
		if err := cb.Ping([]byte("pp")); err != nil {
			t.Errorf("ping: %v", err)
		}
		if err := cb.WriteMessage(codec.OpText, after); err != nil {
			t.Errorf("write: %v", err)
		}
		if err := cc.Close(4001, "c"); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := s.Publish("t", pm2); err != nil {
			t.Errorf("publish: %v", err)
		}
	}

	ls := firstLoop(s)
	release := holdLoop(t, ls)
	tc := a.c.(*net.TCPConn)
	_ = tc.SetLinger(0)
	_ = tc.Close()
	time.Sleep(20 * time.Millisecond) // the RST is in the server's socket
	if err := s.Publish("t", pm1); err != nil {
		t.Fatal(err)
	}
	release()

	if !func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for h.nCloses() == 0 {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
		return true
	}() {
		t.Fatal("a's reset never closed it")
	}
	if !during.Load() {
		_ = cb.Close(4000, "end")
		_ = cc.Close(4000, "end")
		<-rb.done
		<-rc.done
		return false
	}
	t.Logf("OnClose ran inside the drain's flush; b's PendingBytes there: %d", pendingSeen.Load())
	// b: M1, W, M2 then our close; c: M1 then 4001.
	waitFor(t, "b's messages", func() bool { return len(rb.data()) >= 3 })
	_ = cb.Close(4000, "end")
	<-rb.done
	<-rc.done
	check := func(name string, r *stageReader, want string) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
		var got []string
		for _, m := range r.got {
			if m.op == codec.OpPing {
				continue
			}
			got = append(got, m.String())
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s read %v; want %s", name, got, want)
		}
	}
	check("b", rb, "[M1 W M2 close 4000]")
	check("c", rc, "[M1 close 4001]")
	assertStagedCleared(t, s)
	return true
}

// Shutdown while a drain has staged messages: every subscriber gets the
// publication, then 1001, and nothing after it.
func TestReviewStageShutdownAfterStaged(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1,
		Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: time.Minute}})
	const n = 20
	rs, _ := subscribeStageReaders(t, s, h, addr, altOffers(n), func(int) string { return "t" })
	pm, _ := s.Prepare(codec.OpText, stageMsg("S", 3000), "")
	release := holdLoop(t, firstLoop(s))
	if err := s.Publish("t", pm); err != nil {
		t.Fatal(err)
	}
	if err := s.BroadcastPrepared(pm); err != nil {
		t.Fatal(err)
	}
	// A write queued behind the publications for one of them.
	if err := h.conn(3).WriteMessage(codec.OpText, []byte("w|")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	time.Sleep(20 * time.Millisecond) // Shutdown's task is queued behind the drain
	release()
	for i, r := range rs {
		<-r.done
		r.mu.Lock()
		var got []string
		for _, m := range r.got {
			got = append(got, m.String())
		}
		if r.err != nil {
			t.Errorf("client %d: %v", i, r.err)
		}
		r.mu.Unlock()
		want := "[S S close 1001]"
		if i == 3 {
			want = "[S S w close 1001]"
		}
		if fmt.Sprint(got) != want {
			t.Errorf("client %d read %v; want %s", i, got, want)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// A ping made while a subscriber's message is staged is checked against
// MaxPendingBytes without the staged message: PendingBytes leaves it out
// for the rest of its drain (see stageLocked; it is at most stageMax
// bytes, and shared, not the connection's). Counting it would mean
// reading the loop's state from the pinging goroutine (the race detector
// caught exactly that). The ping is accepted and goes ahead of the staged
// message.
func TestReviewStagePingDuringDrainPending(t *testing.T) {
	h := &rstHandler{}
	s, addr := startServer(t, h, Options{
		NumLoops: 1, PingInterval: -1, IdleTimeout: -1,
		MaxMessageSize: 1000, MaxPendingBytes: 1200, HighWaterBytes: 1200,
	}, func(s *Server) { h.srv = s })
	a := dialZ(t, addr, "", 0)
	waitFor(t, "open a", func() bool { return h.conn(0) != nil })
	b := dialZ(t, addr, "", 0)
	waitFor(t, "open b", func() bool { return h.conn(1) != nil })
	ca, cb := h.conn(0), h.conn(1)
	for _, x := range []*Conn{ca, cb} {
		if err := s.Subscribe(x, "t"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 2 })
	rb := startStageReader(b)
	pm, _ := s.Prepare(codec.OpText, stageMsg("M1", 1100), "")
	var pingErr error
	var pending int
	ran := false
	h.onClose = func(x *Conn) {
		if x != ca {
			return
		}
		ran = true
		pending = cb.PendingBytes()
		pingErr = cb.Ping(make([]byte, 125))
	}
	release := holdLoop(t, firstLoop(s))
	tc := a.c.(*net.TCPConn)
	_ = tc.SetLinger(0)
	_ = tc.Close()
	time.Sleep(20 * time.Millisecond)
	if err := s.Publish("t", pm); err != nil {
		t.Fatal(err)
	}
	release()
	waitFor(t, "a's close", func() bool { return h.nCloses() >= 1 })
	onLoops(s, func(*loopState) {}) // ran, pending, pingErr: written on the loop
	t.Logf("OnClose ran in the drain: %v; b's PendingBytes there %d; Ping: %v", ran, pending, pingErr)
	if pingErr == nil {
		_ = cb.Close(4000, "end")
	}
	<-rb.done
	var got []string
	for _, m := range rb.got {
		if m.op != codec.OpPing {
			got = append(got, m.String())
		}
	}
	t.Logf("b read %v", got)
	if !ran {
		t.Fatal("OnClose did not run inside the drain: the staged case was not reached")
	}
	if pending != 0 || pingErr != nil {
		t.Errorf("with M1 staged: PendingBytes %d, Ping %v; want 0 and nil", pending, pingErr)
	}
	if want := "[M1 close 4000]"; fmt.Sprint(got) != want {
		t.Errorf("b read %v; want %s", got, want)
	}
}

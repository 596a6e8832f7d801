//go:build !windows

package loop

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// A message published to idle subscribers is handed to gnet from the
// prepared frames: no send buffer is taken per subscriber. Each round
// empties the buffer pools first (two collections), as the collections of
// a busy server do; with a buffer per subscriber every round then
// allocates at least one per delivery (2.09 per delivery measured).
func TestFanoutTakesNoSendBuffer(t *testing.T) {
	const subs, rounds, size = 200, 20, 100
	h := &recHandler{open: func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	frameLen := 2 + size // unmasked header of a 100-byte payload
	// Readers block in the network poller, not on a channel: a goroutine
	// parked on a channel after a collection allocates its wait record.
	// A reader that fails stops counting, and the round times out.
	var read atomic.Int64
	for range subs {
		w := dialWS(t, addr, 0)
		w.c.SetReadDeadline(time.Time{}) // dialWS leaves the upgrade's
		go func() {
			buf := make([]byte, frameLen)
			for range rounds {
				w.c.SetReadDeadline(time.Now().Add(time.Minute))
				if _, err := io.ReadFull(w.br, buf); err != nil {
					t.Error(err)
					return
				}
				read.Add(1)
			}
		}()
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == subs })
	pm, err := s.Prepare(codec.OpBinary, bytes.Repeat([]byte{'x'}, size), "")
	if err != nil {
		t.Fatal(err)
	}
	var mallocs uint64
	var ms runtime.MemStats
	for r := range rounds {
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for read.Load() < int64(subs*(r+1)) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d messages read", r, read.Load()-int64(subs*r), subs)
			}
			time.Sleep(time.Millisecond)
		}
		runtime.ReadMemStats(&ms)
		mallocs += ms.Mallocs - before
	}
	perDelivery := float64(mallocs) / (subs * rounds)
	t.Logf("%d allocations in %d deliveries: %.3f per delivery", mallocs, subs*rounds, perDelivery)
	if perDelivery > 0.25 {
		t.Errorf("%.3f allocations per delivery; want (close to) none", perDelivery)
	}
}

// Messages decided within one drain keep their order around a staged
// message: a publication, a WriteMessage, a second publication and a
// Close, all waiting in the inbox while the loop is busy, arrive in that
// order; a subscriber given the same publication twice gets it twice.
func TestStagedOrderInOneDrain(t *testing.T) {
	h := &recHandler{open: func(s *Server, c *Conn) {
		_ = s.Subscribe(c, "t")
		_ = s.Subscribe(c, "u")
	}}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	a, b := dialWS(t, addr, 0), dialWS(t, addr, 0)
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == 4 })
	ca := h.conn(0)
	prep := func(p string) *PreparedMessage {
		pm, err := s.Prepare(codec.OpText, []byte(p), "")
		if err != nil {
			t.Fatal(err)
		}
		return pm
	}
	p1, p2 := prep("p1"), prep("p2")

	// Hold the loop so that everything below waits in one inbox.
	release := make(chan struct{})
	held := make(chan struct{})
	s.mu.Lock()
	ls := s.loops[0]
	s.mu.Unlock()
	_ = ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		close(held)
		<-release
		return nil
	}))
	<-held
	steps := []func() error{
		func() error { return s.Publish("t", p1) },
		func() error { return ca.WriteMessage(codec.OpText, []byte("w")) },
		func() error { return s.Publish("u", p1) },
		func() error { return s.Publish("t", p2) },
		func() error { return ca.Close(4000, "bye") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	close(release)

	read := func(w *wsClient, want ...string) {
		t.Helper()
		for i, m := range want {
			op, p, err := w.next(5 * time.Second)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			got := string(p)
			if op == codec.OpClose {
				code, _, _ := codec.ParseClose(p)
				got = "close " + code.String()
			}
			if got != m {
				t.Fatalf("message %d is %q; want %q (all: %q)", i, got, m, want)
			}
		}
	}
	read(a, "p1", "w", "p1", "p2", "close "+codec.StatusCode(4000).String())
	read(b, "p1", "p1", "p2")
}

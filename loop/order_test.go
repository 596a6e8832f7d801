//go:build !windows

package loop

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// One goroutine publishes to a topic c is subscribed to, then writes to c,
// over and over: c must see them in that order (Publish went through the
// loop's inbox while WriteMessage queued at once, so a write could
// overtake the publication before it).
func TestOrderPublishThenWrite(t *testing.T) {
	h := &recHandler{}
	subscribed := make(chan struct{})
	h.open = func(s *Server, c *Conn) {
		_ = s.Subscribe(c, "t")
		close(subscribed)
	}
	s, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	<-subscribed
	c := h.conn(0)
	const n = 300
	go func() {
		for i := range n {
			pm, _ := s.Prepare(codec.OpText, []byte("p"+strconv.Itoa(i)), "")
			_ = s.Publish("t", pm)
			_ = c.WriteMessage(codec.OpText, []byte("w"+strconv.Itoa(i)))
		}
	}()
	for i := range n {
		for _, want := range []string{"p" + strconv.Itoa(i), "w" + strconv.Itoa(i)} {
			op, p, err := w.next(5 * time.Second)
			if err != nil || op != codec.OpText || string(p) != want {
				t.Fatalf("message %d: %v %q %v; want %q", i, op, p, err, want)
			}
		}
	}
}

// The same, decided on the event loop: inside OnMessage, a Publish to c's
// own topic, then a reply.
func TestOrderPublishThenWriteOnLoop(t *testing.T) {
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		pm, _ := h.srv.Prepare(codec.OpText, append([]byte("p"), p...), "")
		_ = h.srv.Publish("t", pm)
		_ = c.WriteMessage(codec.OpText, append([]byte("w"), p...))
	}
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	const n = 100
	for i := range n {
		w.c.Write(cf(true, codec.OpText, []byte(strconv.Itoa(i))))
	}
	for i := range n {
		for _, want := range []string{"p" + strconv.Itoa(i), "w" + strconv.Itoa(i)} {
			op, p, err := w.next(5 * time.Second)
			if err != nil || op != codec.OpText || string(p) != want {
				t.Fatalf("message %d: %v %q %v; want %q", i, op, p, err, want)
			}
		}
	}
}

// A gateway's join: on c's event loop, under the channel's lock, read the
// history, Subscribe and write the reply (which carries the history's last
// offset); publishers, under the same lock, number a message, append it to
// the history and Publish it. c must get the reply first, then exactly the
// messages numbered after it, in order: none twice, none missing.
func TestOrderSubscribeReply(t *testing.T) {
	var (
		mu   sync.Mutex // the channel's lock
		last int        // the history's last offset
		stop atomic.Bool
	)
	h := &recHandler{}
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		_ = h.srv.Subscribe(c, "ch")
		_ = c.WriteMessage(codec.OpText, []byte("joined "+strconv.Itoa(last)))
	}
	s, addr := startRec(t, h, Options{NumLoops: 2, PingInterval: -1, IdleTimeout: -1})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				mu.Lock()
				last++
				pm, _ := s.Prepare(codec.OpText, []byte(strconv.Itoa(last)), "")
				_ = s.Publish("ch", pm)
				mu.Unlock()
				time.Sleep(50 * time.Microsecond)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for j := range 20 {
		w := dialWS(t, addr, 0)
		time.Sleep(time.Millisecond)
		w.c.Write(cf(true, codec.OpText, []byte("join")))
		op, p, err := w.next(5 * time.Second)
		if err != nil || op != codec.OpText || !strings.HasPrefix(string(p), "joined ") {
			t.Fatalf("join %d: first message %v %q %v; want the reply", j, op, p, err)
		}
		next, _ := strconv.Atoi(strings.TrimPrefix(string(p), "joined "))
		for range 50 {
			next++
			op, p, err := w.next(5 * time.Second)
			if err != nil || string(p) != strconv.Itoa(next) {
				t.Fatalf("join %d: got %v %q %v; want %d", j, op, p, err, next)
			}
		}
		w.c.Close()
	}
}

// UnsubscribeOnLoop inside OnMessage: a publication already in the loop's
// inbox does not reach c any more, and a Subscribe still in the inbox is
// cancelled; a Subscribe made after it works again.
func TestOrderUnsubscribeOnLoop(t *testing.T) {
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		s := h.srv
		pub := func(m string) {
			pm, _ := s.Prepare(codec.OpText, []byte(m), "")
			_ = s.Publish("t", pm)
		}
		switch string(p) {
		case "leave": // the publication is in the inbox before the unsubscribe
			pub("before-leave")
			s.UnsubscribeOnLoop(c, "t")
		case "sub-unsub": // the subscribe is in the inbox, then cancelled
			_ = s.Subscribe(c, "t")
			s.UnsubscribeOnLoop(c, "t")
			pub("after-unsub")
		case "sub":
			_ = s.Subscribe(c, "t")
			pub("after-sub")
		}
		_ = c.WriteMessage(codec.OpText, append([]byte("done "), p...))
	}
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	for _, step := range [][]string{
		{"leave", "done leave"},
		{"sub-unsub", "done sub-unsub"},
		{"sub", "after-sub", "done sub"},
	} {
		w.c.Write(cf(true, codec.OpText, []byte(step[0])))
		for _, want := range step[1:] {
			_, p, err := w.next(5 * time.Second)
			if err != nil || string(p) != want {
				t.Fatalf("%s: got %q %v; want %q", step[0], p, err, want)
			}
		}
	}
}

//go:build !windows

package loop

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// Publish after Shutdown: what does it return, and does anything grow?
// TestPublishAfterShutdown: once the engine has stopped, Publish and
// Broadcast say so (ErrServerClosed) and keep nothing (they returned nil
// and every message stayed in an inbox nothing drained: 64 MB for a
// million).
func TestPublishAfterShutdown(t *testing.T) {
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	s, addr := startRec(t, h, Options{NumLoops: 2})
	_ = dialWS(t, addr, 0)
	waitFor(t, "open", func() bool { return s.Stats().Subscriptions == 1 })
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != ErrServerClosed {
		t.Fatalf("Wait: %v, want ErrServerClosed", err)
	}
	pm, _ := s.Prepare(codec.OpBinary, make([]byte, 100), "")
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	var first, last error
	for i := range 100_000 {
		err := s.Publish("t", pm)
		if i == 0 {
			first = err
		}
		last = err
	}
	err := s.Broadcast(codec.OpText, []byte("x"))
	runtime.GC()
	runtime.ReadMemStats(&m1)
	inbox := 0
	for _, ls := range s.loops {
		ls.inboxMu.Lock()
		inbox += len(ls.inbox)
		ls.inboxMu.Unlock()
	}
	if first != ErrServerClosed || last != ErrServerClosed || err != ErrServerClosed || inbox != 0 {
		t.Fatalf("after Shutdown: Publish %v then %v, Broadcast %v, %d inbox entries kept; want ErrServerClosed and none",
			first, last, err, inbox)
	}
	if grew := int64(m1.HeapAlloc) - int64(m0.HeapAlloc); grew > 1<<20 {
		t.Fatalf("heap grew by %d bytes over 100,000 refused publishes", grew)
	}
}

// TestStopAccepting: after StopAccepting an upgraded connection stays
// open and still gets publications, a new TCP connection is closed
// without a response, an upgrade that was in progress is answered 503,
// and Shutdown then closes the open connection with 1001.
func TestStopAccepting(t *testing.T) {
	h := &recHandler{}
	h.open = func(s *Server, c *Conn) { _ = s.Subscribe(c, "t") }
	s, addr := startRec(t, h, Options{NumLoops: 2})
	ws := dialWS(t, addr, 0)
	waitFor(t, "subscription", func() bool { return s.Stats().Subscriptions == 1 })
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	req := upgradeRequest
	if _, err := io.WriteString(half, req[:len(req)-2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handshake's TCP connection", func() bool { return s.Stats().TCPConns == 2 })

	s.StopAccepting()
	pm, _ := s.Prepare(codec.OpText, []byte("after"), "")
	if err := s.Publish("t", pm); err != nil {
		t.Fatal(err)
	}
	if op, p, err := ws.next(5 * time.Second); err != nil || op != codec.OpText || string(p) != "after" {
		t.Fatalf("open connection after StopAccepting: %v %q %v, want the publication", op, p, err)
	}
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	_, _ = io.WriteString(late, upgradeRequest)
	late.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(late); len(b) != 0 || isTimeout(err) {
		t.Fatalf("new connection after StopAccepting: read %q, %v; want it closed without a response", b, err)
	}
	_, _ = io.WriteString(half, "\r\n")
	half.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, err := bufio.NewReader(half).ReadString('\n'); !strings.HasPrefix(status, "HTTP/1.1 503 ") {
		t.Fatalf("upgrade in progress at StopAccepting: %q %v, want 503", status, err)
	}
	if n := s.Conns(); n != 1 {
		t.Fatalf("Conns after StopAccepting: %d, want 1", n)
	}

	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	op, p, err := ws.next(5 * time.Second)
	if code, _, _ := codec.ParseClose(p); err != nil || op != codec.OpClose || code != codec.StatusGoingAway {
		t.Fatalf("after Shutdown: %v %q %v, want close 1001", op, p, err)
	}
}

//go:build !windows

package loop

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// cf is a masked client frame (zero key: payload unchanged).
func cf(fin bool, op codec.OpCode, p []byte) []byte {
	return codec.AppendFrame(nil, codec.Header{Fin: fin, OpCode: op, Masked: true}, p)
}

func closeP(code int, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

func (h *recHandler) nCloses() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.closes)
}

// We close first and the peer resets TCP without answering: OnClose must
// tell that from a completed closing handshake (CloseError.Err).
func TestCloseErrorPeerVanished(t *testing.T) {
	h := &recHandler{}
	h.open = func(_ *Server, c *Conn) { _ = c.Close(codec.StatusNormalClosure, "bye") }
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	// 1: clean handshake
	w := dialWS(t, addr, 0)
	op, _, err := w.next(2 * time.Second)
	if err != nil || op != codec.OpClose {
		t.Fatalf("no close: %v %v", op, err)
	}
	w.c.Write(cf(true, codec.OpClose, closeP(1000, "")))
	waitFor(t, "close 1", func() bool { return h.nCloses() == 1 })
	// 2: RST after reading our close
	w2 := dialWS(t, addr, 0)
	w2.next(2 * time.Second)
	w2.c.(*net.TCPConn).SetLinger(0)
	w2.c.Close()
	waitFor(t, "close 2", func() bool { return h.nCloses() == 2 })
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("completed handshake: %+v", *h.closes[0])
	t.Logf("peer reset TCP:      %+v", *h.closes[1])
	if h.closes[0].Err != nil || h.closes[1].Err == nil {
		t.Errorf("completed handshake Err %v, vanished peer Err %v; want nil and the TCP error",
			h.closes[0].Err, h.closes[1].Err)
	}
}

// An invalid close frame in answer to ours ends the connection at once,
// not after CloseTimeout.
func TestInvalidCloseAnswerClosesNow(t *testing.T) {
	h := &recHandler{}
	h.open = func(_ *Server, c *Conn) { _ = c.Close(codec.StatusNormalClosure, "bye") }
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1, CloseTimeout: 2 * time.Second})
	w := dialWS(t, addr, 0)
	w.next(2 * time.Second)
	start := time.Now()
	w.c.Write(cf(true, codec.OpClose, []byte{0x03})) // 1-byte payload: invalid
	w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(w.br)
	t.Logf("after invalid close: %d bytes, %v after %v", len(rest), err, time.Since(start))
	waitFor(t, "close", func() bool { return h.nCloses() == 1 })
	el := time.Since(start)
	h.mu.Lock()
	t.Logf("OnClose after %v: %+v", el, *h.closes[0])
	h.mu.Unlock()
	if el > time.Second {
		t.Errorf("server waited %v (CloseTimeout) after the peer's (invalid) close", el)
	}
}

// After the handler's Close inside OnMessage, later messages from the same
// read are not delivered.
func TestNoMessageAfterHandlerClose(t *testing.T) {
	var got []string
	var mu sync.Mutex
	h := &recHandler{}
	h.msg = func(c *Conn, op codec.OpCode, p []byte) {
		mu.Lock()
		got = append(got, string(p))
		mu.Unlock()
		_ = c.Close(codec.StatusNormalClosure, "enough")
	}
	_, addr := startRec(t, h, Options{PingInterval: -1, IdleTimeout: -1})
	w := dialWS(t, addr, 0)
	var b []byte
	for _, s := range []string{"one", "two", "three"} {
		b = append(b, cf(true, codec.OpText, []byte(s))...)
	}
	w.c.Write(b)
	w.next(2 * time.Second)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("OnMessage calls: %q", got)
	if len(got) != 1 {
		t.Errorf("OnMessage called %d times after the handler's Close", len(got)-1)
	}
}

// MaxConns holds when several loops upgrade at once.
func TestMaxConnsAcrossLoops(t *testing.T) {
	h := &recHandler{}
	s, addr := startRec(t, h, Options{NumLoops: 8, MaxConns: 4, PingInterval: -1, IdleTimeout: -1})
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		var ok atomic.Int64
		var conns []net.Conn
		var cmu sync.Mutex
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				cmu.Lock()
				conns = append(conns, c)
				cmu.Unlock()
				io.WriteString(c, upgradeRequest)
				buf := make([]byte, 12)
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.ReadFull(c, buf); err == nil && bytes.Contains(buf, []byte("101")) {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		n := s.Conns()
		for _, c := range conns {
			c.Close()
		}
		if ok.Load() > 4 {
			t.Fatalf("round %d: %d upgrades accepted (Conns %d) with MaxConns 4", round, ok.Load(), n)
		}
		waitFor(t, "drain", func() bool { return s.Conns() == 0 })
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func TestShutdownNotStarted(t *testing.T) {
	s, err := NewServer(nopHandler{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Shutdown of a server never started: nil error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown of a server never started hangs")
	}
}

// TestStartPortTaken: Start fails when another server already listens on
// the address. With SO_REUSEPORT the kernel let the second bind succeed
// and split new connections between the two servers.
func TestStartPortTaken(t *testing.T) {
	_, addr := startServer(t, nopHandler{}, Options{}, nil)
	s2, err := NewServer(nopHandler{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(addr); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s2.Shutdown(ctx)
		t.Fatalf("a second server started on %s, taken by the first", addr)
	}
}

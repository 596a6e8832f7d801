//go:build !windows

package loop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/upgrade"
)

// Every error that implies a close code tells it through CloseCode, and
// closeCode reads it with one interface check, wrapped or not.
func TestCloseCodeOfErrors(t *testing.T) {
	for err, want := range map[error]codec.StatusCode{
		ErrSlowConsumer:        codec.StatusPolicyViolation,
		ErrIdle:                codec.StatusGoingAway,
		ErrShutdown:            codec.StatusGoingAway,
		codec.ErrInvalidUTF8:   codec.StatusInvalidFramePayloadData,
		codec.ErrFrameTooLarge: codec.StatusMessageTooBig,
		deflate.ErrCorrupt:     codec.StatusInvalidFramePayloadData,
		deflate.ErrTooLarge:    codec.StatusMessageTooBig,
		errors.New("other"):    codec.StatusInternalError,
	} {
		if got := closeCode(err); got != want {
			t.Errorf("closeCode(%v) = %v, want %v", err, got, want)
		}
		if got := closeCode(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("closeCode(wrapped %v) = %v, want %v", err, got, want)
		}
	}
	for _, err := range []error{ErrSlowConsumer, ErrIdle, ErrShutdown, ErrClosed, ErrServerClosed,
		ErrNotData, ErrControlTooLong, ErrEmptyTopic, ErrCloseTimeout, ErrNoPeerClose, upgrade.ErrForbidden} {
		if s := err.Error(); !bytes.HasPrefix([]byte(s), []byte("loop: ")) && !bytes.HasPrefix([]byte(s), []byte("upgrade: ")) {
			t.Errorf("%q: no package prefix", s)
		}
	}
}

// Wait returns ErrServerClosed after Shutdown, and a second Shutdown is a
// no-op.
func TestShutdownTwiceAndWait(t *testing.T) {
	s, err := NewServer(nopHandler{}, Options{NumLoops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v, want nil", err)
	}
	if err := <-waited; err != ErrServerClosed {
		t.Errorf("Wait: %v, want ErrServerClosed", err)
	}
}

// RemoteAddr is taken at accept: it still answers inside and after
// OnClose (gnet clears its own address when it closes the connection).
func TestRemoteAddrAfterClose(t *testing.T) {
	var (
		mu      sync.Mutex
		inClose net.Addr
		conn    *Conn
	)
	h := &recHandler{}
	h.open = func(_ *Server, c *Conn) {
		mu.Lock()
		conn = c
		mu.Unlock()
	}
	_, addr := startServer(t, &closeHook{recHandler: h, fn: func(c *Conn) {
		mu.Lock()
		inClose = c.RemoteAddr()
		mu.Unlock()
	}}, Options{NumLoops: 1}, nil)
	w := dialWS(t, addr, 0)
	local := w.c.LocalAddr().String()
	waitFor(t, "open", func() bool { mu.Lock(); defer mu.Unlock(); return conn != nil })
	w.c.Close()
	waitFor(t, "close", func() bool { return h.nCloses() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if inClose == nil || inClose.String() != local {
		t.Errorf("RemoteAddr in OnClose = %v, want %s", inClose, local)
	}
	if a := conn.RemoteAddr(); a == nil || a.String() != local {
		t.Errorf("RemoteAddr after close = %v, want %s", a, local)
	}
}

// closeHook is a recHandler that also runs fn in OnClose.
type closeHook struct {
	*recHandler
	fn func(*Conn)
}

func (h *closeHook) OnClose(c *Conn, err error) {
	h.fn(c)
	h.recHandler.OnClose(c, err)
}

// An Authorize error that is not an upgrade.RejectError is answered with
// a generic 403: its text (which may name internals) is not sent.
func TestAuthorizeErrorTextNotSent(t *testing.T) {
	const secret = "db password rejected for user root"
	_, addr := startServer(t, nopHandler{}, Options{NumLoops: 1, Authorize: func(*upgrade.Request) (any, error) {
		return nil, errors.New(secret)
	}}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(upgradeRequest)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	t.Logf("%d %q", res.StatusCode, body)
	if res.StatusCode != 403 || bytes.Contains(body, []byte("password")) {
		t.Errorf("got %d %q; want 403 without the error's text", res.StatusCode, body)
	}
}

// Close with a code that may not go on the wire sends 1011, and the
// CloseError OnClose receives says 1011, as the peer saw it.
func TestCloseRecordsCodeSent(t *testing.T) {
	for _, tc := range []struct {
		code         codec.StatusCode
		reason       string
		want         codec.StatusCode
		wantReason   string
		wantNoStatus bool
	}{
		{code: codec.StatusAbnormalClosure, reason: "x", want: codec.StatusInternalError, wantReason: "x"},
		{code: 999, want: codec.StatusInternalError},
		{code: 0, want: codec.StatusNoStatusRcvd, wantNoStatus: true},
		{code: codec.StatusNormalClosure, reason: "bad \xff", want: codec.StatusNormalClosure},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			h := &recHandler{}
			h.open = func(_ *Server, c *Conn) { _ = c.Close(tc.code, tc.reason) }
			_, addr := startRec(t, h, Options{})
			w := dialWS(t, addr, 0)
			op, p, err := w.next(2 * time.Second)
			if err != nil || op != codec.OpClose {
				t.Fatalf("no close frame: %v %v", op, err)
			}
			got, why, err := codec.ParseClose(p)
			if err != nil || got != tc.want || string(why) != tc.wantReason {
				t.Fatalf("wire: %v %q %v; want %v %q", got, why, err, tc.want, tc.wantReason)
			}
			w.c.Write(cf(true, codec.OpClose, p))
			waitFor(t, "close", func() bool { return h.nCloses() == 1 })
			h.mu.Lock()
			ce := h.closes[0]
			h.mu.Unlock()
			if ce.Code != tc.want || ce.Reason != tc.wantReason {
				t.Errorf("CloseError %v %q; want %v %q (what was sent)", ce.Code, ce.Reason, tc.want, tc.wantReason)
			}
		})
	}
}

// The per-loop counters, summed by Stats: messages and bytes in and out,
// refused upgrades by status, close frames by code sent and received.
func TestStatsCounters(t *testing.T) {
	h := &recHandler{}
	h.msg = func(c *Conn, op codec.OpCode, p []byte) { _ = c.WriteMessage(op, p) }
	s, addr := startRec(t, h, Options{NumLoops: 1})
	w := dialWS(t, addr, 0)
	for _, m := range []string{"one", "two"} {
		w.c.Write(cf(true, codec.OpText, []byte(m)))
		if _, p, err := w.next(2 * time.Second); err != nil || string(p) != m {
			t.Fatalf("echo %q: %q %v", m, p, err)
		}
	}
	w.c.Write(cf(true, codec.OpClose, closeP(1000, "")))
	if op, _, err := w.next(2 * time.Second); err != nil || op != codec.OpClose {
		t.Fatalf("no close answer: %v %v", op, err)
	}
	waitFor(t, "close", func() bool { return h.nCloses() == 1 })
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	bad.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\n\r\n"))
	io.ReadAll(bad)
	bad.Close()
	st := s.Stats()
	t.Logf("%+v", st)
	if st.MessagesIn != 2 || st.MessagesOut != 2 || st.BytesIn < int64(len(upgradeRequest)) || st.BytesOut == 0 ||
		st.Rejected[405] != 1 || st.ClosesReceived[1000] != 1 || st.ClosesSent[1000] != 1 {
		t.Errorf("counters: %+v", st)
	}
}

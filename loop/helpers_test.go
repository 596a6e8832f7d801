//go:build !windows

package loop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// withDeflateOffer returns the upgrade request req with a
// permessage-deflate offer.
func withDeflateOffer(req string) string {
	return strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type nopHandler struct{}

func (nopHandler) OnOpen(*Conn)                          {}
func (nopHandler) OnMessage(*Conn, codec.OpCode, []byte) {}
func (nopHandler) OnClose(*Conn, error)                  {}

// onLoops runs fn on each event loop of s and waits for all of them.
func onLoops(s *Server, fn func(*loopState)) {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ls := range loops {
		wg.Add(1)
		_ = ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer wg.Done()
			fn(ls)
			return nil
		}))
	}
	wg.Wait()
}

// countConns counts the open connections for which pred holds.
func countConns(s *Server, pred func(*Conn) bool) int {
	var n atomic.Int64
	onLoops(s, func(ls *loopState) {
		ls.wheel.each(func(c *Conn) {
			if c.state == stateOpen && pred(c) {
				n.Add(1)
			}
		})
	})
	return int(n.Load())
}

// startServer starts a server for h on a free address, logging nothing,
// and shuts it down when the test ends; bind, if not nil, gets the server
// before it starts (handlers that need it in OnOpen).
func startServer(t testing.TB, h Handler, o Options, bind func(*Server)) (*Server, string) {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := NewServer(h, o)
	if err != nil {
		t.Fatal(err)
	}
	if bind != nil {
		bind(s)
	}
	addr := freeAddr(t)
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, addr
}

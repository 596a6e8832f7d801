package load

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// declining is a WebSocket server without permessage-deflate (gorilla's
// Upgrader with compression off answers an offer without the extension).
// It reports the close error of every connection on closes.
type declining struct{ closes chan error }

func (s *declining) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.closes <- err
		return
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			s.closes <- err
			return
		}
	}
}

// runDeclined runs a -deflate echo load of conns connections against url,
// a server that declines permessage-deflate: every handshake must fail
// with errRespNoDeflate.
func runDeclined(t *testing.T, url string, conns int) {
	t.Helper()
	cfg := Config{
		Scenario: ScenarioEcho, URL: url, Deflate: true,
		Conns: conns, Workers: 1, Size: 64, Duration: time.Second, Loops: 1,
		Timeout: 30 * time.Second, Sources: []string{},
	}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), errRespNoDeflate.Error()) {
		t.Errorf("Run: %v, want an error that says %q", err, errRespNoDeflate)
	}
}

func TestDeflateDeclinedClosesWith1010(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &declining{closes: make(chan error, 16)}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()

	const conns = 2
	runDeclined(t, "ws://"+ln.Addr().String()+"/", conns)
	for range conns {
		select {
		case err := <-srv.closes:
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("server read %v, want a close frame", err)
			}
			if ce.Code != websocket.CloseMandatoryExtension || ce.Text != "permessage-deflate" {
				t.Errorf("close frame %d %q, want 1010 %q", ce.Code, ce.Text, "permessage-deflate")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server saw no end of a connection")
		}
	}
}

// closeRecorder is a loop.Handler that reports how every connection ended.
type closeRecorder struct {
	loop.BuiltinHandler
	closes chan error
}

func (h *closeRecorder) OnClose(_ *loop.Conn, err error) { h.closes <- err }

// TestDeflateDeclinedByWsgate runs the same check against wsgate's own
// server without Options.Deflate, which answers a permessage-deflate offer
// without the extension: the close frame it reads must be 1010 naming the
// extension, sent first by the client.
func TestDeflateDeclinedByWsgate(t *testing.T) {
	h := &closeRecorder{closes: make(chan error, 16)}
	srv, err := loop.NewServer(h, loop.Options{NumLoops: 1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // Start listens itself
	if err := srv.Start(addr); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()

	const conns = 2
	runDeclined(t, "ws://"+addr+"/", conns)
	for range conns {
		select {
		case err := <-h.closes:
			var ce *loop.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("OnClose(%v), want a *loop.CloseError", err)
			}
			if ce.Code != codec.StatusMandatoryExtension || ce.Reason != "permessage-deflate" || !ce.Remote {
				t.Errorf("close %d %q (remote %v), want 1010 %q from the client", ce.Code, ce.Reason, ce.Remote, "permessage-deflate")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server saw no end of a connection")
		}
	}
}

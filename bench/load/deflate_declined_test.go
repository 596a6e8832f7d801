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

func TestDeflateDeclinedClosesWith1010(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &declining{closes: make(chan error, 16)}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()

	cfg := Config{
		Scenario: ScenarioEcho, URL: "ws://" + ln.Addr().String() + "/", Deflate: true,
		Conns: 2, Workers: 1, Size: 64, Duration: time.Second, Loops: 1,
		Timeout: 30 * time.Second, Sources: []string{},
	}
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), errRespNoDeflate.Error()) {
		t.Errorf("Run: %v, want an error that says %q", err, errRespNoDeflate)
	}
	for range cfg.Conns {
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

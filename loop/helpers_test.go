package loop

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// withDeflateOffer returns the upgrade request req with a
// permessage-deflate offer.
func withDeflateOffer(req string) string {
	return strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
}

func freeAddr(t *testing.T) string {
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

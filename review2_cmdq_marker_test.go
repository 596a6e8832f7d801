package wsgate

import (
	"errors"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// TestReview2CmdqMarkerBehindQueuedConnect: a connect whose server-side
// subscription waits for the broker is queued; the client then sends a
// message that breaks the protocol (a binary frame on a JSON
// connection), then a ping. The connect is answered, then the client is
// closed with 3501, and the ping (after the bad message) is not
// answered; the node ends with no client and no channel.
func TestReview2CmdqMarkerBehindQueuedConnect(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	base := n.NumChannels()
	b.shut()
	g := dialNode(t, n.addr, false)
	g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": "u", "channels": []string{"slow:srv"}})}})
	idConnect := g.id
	waitUntil(t, "the connect waiting", func() bool { return b.nwaiting() == 1 })
	g.writeFrame(codec.OpBinary, []byte{1, 2, 3})
	g.send(&protocol.Command{Ping: &protocol.PingRequest{}})
	b.release()
	r := g.reply()
	if r.Id != idConnect || r.Connect == nil {
		t.Fatalf("want the connect reply, got %+v", r)
	}
	for {
		r, err := g.next()
		var ce closedError
		if errors.As(err, &ce) {
			if ce.code != 3501 {
				t.Fatalf("closed with %d %q, want 3501", ce.code, ce.reason)
			}
			break
		}
		if err != nil {
			t.Fatalf("want close 3501, got %v", err)
		}
		if r.Id != 0 {
			t.Fatalf("a reply after the bad message: %+v", r)
		}
	}
	waitUntil(t, "the client gone", func() bool { return n.NumClients() == 0 && n.NumChannels() == base })
}

package wsgate

import (
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/loop"
)

// TestReview2CmdqExpiryWhileQueued: a client whose subscribe creates a
// channel at a broker that does not answer, with a publish queued
// behind, is disconnected by the sweep when its token expires (3005).
// When the broker answers, the queued publish is not made, the channel
// is not left on the node, and no worker runs. The client never answers
// the close frame, so OnClose runs only at the close timeout: what is
// checked is the disconnect itself.
func TestReview2CmdqExpiryWhileQueued(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.ExpiredCloseDelay = Duration(time.Nanosecond)
	n, b := startGatedNode(t, cfg, NodeOptions{Loop: loop.Options{CloseTimeout: 20 * time.Second}})
	base := n.NumChannels()
	g := dialNode(t, n.addr, true)
	g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(2 * time.Second).Unix()}))
	b.shut()
	g.send(
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:new"}},
		&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:after", Data: []byte(`{}`)}},
	)
	waitUntil(t, "the subscribe waiting", func() bool { return b.nwaiting() == 1 })
	g.expectClose(uint16(disconnectExpired.Code))
	b.release()
	waitUntil(t, "workers done", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return n.work.n == 0
	})
	if got := n.historyLen(t, "chat:after"); got != 0 {
		t.Fatalf("the publish queued behind was made after the expiry disconnect: %d", got)
	}
	if got := n.NumChannels(); got != base {
		t.Fatalf("channels: %d, want %d (%v)", got, base, n.apiCall(t, "channels", map[string]any{}))
	}
}

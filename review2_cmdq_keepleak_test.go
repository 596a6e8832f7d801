package wsgate

import (
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview2CmdqKeepLeaksPastRateLimitedUnsubscribe: /api/subscribe
// marks the subscription keep because an unsubscribe of the channel is
// queued; that unsubscribe is then refused by the command rate limit
// (error 111), so it never clears keep. Later the client unsubscribes
// again, queued behind a publish: the reply is success, but the stale
// keep swallows it: the client left the engine topic (on its loop, when
// the unsubscribe was queued) but keeps the subscription, so /api/channels
// still counts it, and its next subscribe to the channel fails with 105
// "already subscribed" while no publication reaches it.
func TestReview2CmdqKeepLeaksPastRateLimitedUnsubscribe(t *testing.T) {
	for attempt := 0; attempt < 3; attempt++ {
		if review2KeepLeak(t) {
			return
		}
	}
	t.Skip("the queued unsubscribe was never rate limited (window boundaries)")
}

// review2KeepLeak reports false when the setup did not happen (the first
// queued unsubscribe was not rate limited).
func review2KeepLeak(t *testing.T) bool {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = 2
	n, b := startGatedNode(t, cfg, NodeOptions{})
	const ch = "chat:k"
	g := dialNode(t, n.addr, false)
	cr := g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	time.Sleep(1100 * time.Millisecond) // a new rate window
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	// Rate window: the subscribe counted 1; the publish (on the loop) 2;
	// the queued unsubscribe is refused.
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
	)
	idUnsub := g.id
	if m := n.apiCall(t, "subscribe", map[string]any{"channel": ch, "client": cr.Client}); m["error"] != nil {
		t.Fatalf("api subscribe: %v", m)
	}
	b.release()
	limited := false
	for {
		r := g.reply()
		if r.Id == idUnsub {
			limited = r.Error != nil && r.Error.Code == 111
			break
		}
	}
	if !limited {
		t.Logf("the first unsubscribe was not rate limited; again")
		return false
	}
	time.Sleep(1100 * time.Millisecond) // a new rate window
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
	)
	idUnsub = g.id
	b.release()
	for {
		r := g.reply()
		if r.Id == idUnsub {
			if r.Error != nil {
				t.Fatalf("second unsubscribe: %+v", r.Error)
			}
			break
		}
	}
	time.Sleep(1100 * time.Millisecond) // a new rate window
	m := n.apiCall(t, "channels", map[string]any{})
	r := g.subscribe(&protocol.SubscribeRequest{Channel: ch})
	if r.Error != nil {
		t.Fatalf("after its unsubscribe was answered with success, the client cannot subscribe again: %+v (the keep mark from /api/subscribe outlived the rate-limited unsubscribe and swallowed the later one; /api/channels then: %v)", r.Error, m)
	}
	off := n.publishAPI(t, ch, `{"after":1}`)
	if p := g.pub(ch); p.Offset != off {
		t.Fatalf("publication %d, want %d", p.Offset, off)
	}
	return true
}

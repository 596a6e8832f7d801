package wsgate

import (
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestCmdqAPIUnsubscribeAfterQueuedSubscribe: a client's subscribe waits
// in its queue (behind a publish waiting for the broker) when
// /api/unsubscribe unsubscribes it from the same channel. The API call
// comes after the subscribe: it runs after it, so the client ends
// unsubscribed (told by a push) and a later publication does not reach
// it.
func TestCmdqAPIUnsubscribeAfterQueuedSubscribe(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	const ch = "chat:u"
	g := dialNode(t, n.addr, false)
	cr := g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch}},
	)
	if m := n.apiCall(t, "unsubscribe", map[string]any{"channel": ch, "client": cr.Client}); m["error"] != nil {
		t.Fatalf("api unsubscribe: %v", m)
	}
	b.release()
	pushUnsub := false
	for replies := 0; replies < 2 || !pushUnsub; { // the publish and subscribe replies, then the push
		r := g.reply()
		if r.Push != nil {
			pushUnsub = pushUnsub || (r.Push.Unsubscribe != nil && r.Push.Channel == ch)
			continue
		}
		if r.Error != nil {
			t.Fatalf("reply %d: %+v", r.Id, r.Error)
		}
		replies++
	}
	n.publishAPI(t, ch, `{"after":1}`)
	g.call(&protocol.Command{Ping: &protocol.PingRequest{}})
	for _, q := range g.queue {
		if q.Push != nil && q.Push.Pub != nil {
			t.Fatalf("after /api/unsubscribe, called after the client's subscribe, a publication reached it: %+v", q.Push.Pub)
		}
	}
}

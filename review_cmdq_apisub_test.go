package wsgate

import (
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqAPISubscribeAfterQueuedUnsubscribe: a client's
// unsubscribe waits in its queue (behind a publish waiting for the
// broker) when /api/subscribe subscribes it to the same channel. The API
// call comes after the unsubscribe, and returns success; the client must
// end up subscribed. It does not: the API skips the client (the queued
// unsubscribe has not run, so it still counts as subscribed), then the
// unsubscribe runs.
func TestReviewCmdqAPISubscribeAfterQueuedUnsubscribe(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	const ch = "chat:s"
	g := dialNode(t, n.addr, false)
	cr := g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
	)
	if m := n.apiCall(t, "subscribe", map[string]any{"channel": ch, "client": cr.Client}); m["error"] != nil {
		t.Fatalf("api subscribe: %v", m)
	}
	b.release()
	pushSub := false
	for replies := 0; replies < 2; { // the publish and unsubscribe replies, and any push
		r := g.reply()
		if r.Push != nil {
			pushSub = pushSub || r.Push.Subscribe != nil
			continue
		}
		replies++
	}
	n.publishAPI(t, ch, `{"after":1}`)
	g.call(&protocol.Command{Ping: &protocol.PingRequest{}})
	var got *protocol.Publication
	for _, q := range g.queue {
		if q.Push != nil && q.Push.Pub != nil {
			got = q.Push.Pub
		}
	}
	if got == nil {
		t.Fatalf("after /api/subscribe (which returned success, push subscribe seen: %v) the client is not subscribed: a publication did not reach it", pushSub)
	}
}

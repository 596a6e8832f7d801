package wsgate

import (
	"fmt"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview2CmdqAPISubscribeBeforeQueuedResubscribe: a client
// subscribed to a channel with recovery sends, behind a publish that
// waits for the broker, the SDK's resubscription: an unsubscribe and a
// recovering subscribe from the last offset it read. Publications follow
// meanwhile. Then /api/subscribe subscribes it to the same channel. The
// client's commands came first: run in order (as Centrifugo does) its
// unsubscribe and recovering subscribe succeed, the subscribe returns the
// publications it missed, and the API call finds it subscribed. The
// client's subscribe must not fail, and the missed publications must
// reach it.
func TestReview2CmdqAPISubscribeBeforeQueuedResubscribe(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	const ch = "chat:r2"
	n.publishAPI(t, ch, `{"n":0}`)
	g := dialNode(t, n.addr, false)
	cr := g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	r := g.subscribe(&protocol.SubscribeRequest{Channel: ch})
	if r.Subscribe == nil {
		t.Fatalf("subscribe: %+v", r)
	}
	epoch, last := r.Subscribe.Epoch, r.Subscribe.Offset
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: last}},
	)
	idSub := g.id
	for range 3 {
		n.publishAPI(t, ch, `{"missed":1}`)
	}
	if m := n.apiCall(t, "subscribe", map[string]any{"channel": ch, "client": cr.Client}); m["error"] != nil {
		t.Fatalf("api subscribe: %v", m)
	}
	b.release()
	var sub *protocol.Reply
	for sub == nil {
		r := g.reply()
		if r.Id == idSub {
			sub = r
		}
	}
	if sub.Error != nil {
		t.Fatalf("the client's recovering subscribe, sent before /api/subscribe, failed: %+v (the 3 publications it missed are not recovered)", sub.Error)
	}
	if s := sub.Subscribe; !s.Recovered || len(s.Publications) != 3 {
		t.Fatalf("want 3 recovered publications, got %+v", s)
	}
}

// TestReview2CmdqAPISubscribeAfterTwoQueuedUnsubscribes: behind a
// publish waiting for the broker, a subscribed client queues unsubscribe,
// subscribe, unsubscribe of one channel; then /api/subscribe (success)
// subscribes it to that channel. Run in order, the API call comes last:
// the client must end up subscribed (the fix's keep flag covers one
// queued unsubscribe only).
func TestReview2CmdqAPISubscribeAfterTwoQueuedUnsubscribes(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	const ch = "chat:r3"
	g := dialNode(t, n.addr, false)
	cr := g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch}},
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
	)
	last := g.id
	if m := n.apiCall(t, "subscribe", map[string]any{"channel": ch, "client": cr.Client}); m["error"] != nil {
		t.Fatalf("api subscribe: %v", m)
	}
	b.release()
	var errs []string
	for {
		r := g.reply()
		if r.Error != nil {
			errs = append(errs, fmt.Sprintf("id %d: %v", r.Id, r.Error))
		}
		if r.Id == last {
			break
		}
	}
	n.publishAPI(t, ch, `{"after":1}`)
	g.call(&protocol.Command{Ping: &protocol.PingRequest{}})
	for _, q := range g.queue {
		if q.Push != nil && q.Push.Pub != nil {
			return
		}
	}
	t.Fatalf("after /api/subscribe (success), called after the client's commands, the client is not subscribed; errors to its commands: %v", errs)
}

package wsgate

import (
	"fmt"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqQueuedUnsubscribeResubscribe: a client subscribed to a
// busy channel sends, behind a command that waits for the broker, an
// unsubscribe and a recovering subscribe from the last offset it read.
// It must get no push between the two replies, and from the subscribe
// reply on every publication once, in order.
func TestReviewCmdqQueuedUnsubscribeResubscribe(t *testing.T) {
	for _, pb := range []bool{false, true} {
		t.Run(fmt.Sprint("protobuf=", pb), func(t *testing.T) { reviewResub(t, pb) })
	}
}

func reviewResub(t *testing.T, pb bool) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	const ch = "chat:x"
	n.publishAPI(t, ch, `{"n":0}`)
	g := dialNode(t, n.addr, pb)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	r := g.subscribe(&protocol.SubscribeRequest{Channel: ch})
	if r.Subscribe == nil {
		t.Fatalf("subscribe: %+v", r)
	}
	epoch, last := r.Subscribe.Epoch, r.Subscribe.Offset
	_, stop := n.publishLoop(ch, time.Millisecond)
	defer stop()
	for range 10 {
		p := g.pub(ch)
		if p.Offset != last+1 {
			t.Fatalf("push %d after %d", p.Offset, last)
		}
		last = p.Offset
	}
	g.queueBehindSlowPublish(t, b,
		&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}},
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: last}},
	)
	idPub := g.id - 2
	time.Sleep(30 * time.Millisecond) // publications go on meanwhile
	b.release()
	// In-flight pushes before the unsubscribe reply are ignored (the
	// client unsubscribed).
	for {
		r := g.reply()
		if r.Push != nil {
			continue
		}
		if r.Id != idPub || r.Publish == nil {
			t.Fatalf("want the publish reply, got %+v", r)
		}
		break
	}
	for {
		r := g.reply()
		if r.Push != nil {
			continue
		}
		if r.Id != idPub+1 || r.Unsubscribe == nil {
			t.Fatalf("want the unsubscribe reply, got %+v", r)
		}
		break
	}
	r = g.reply()
	if r.Push != nil {
		t.Fatalf("a push between the unsubscribe and subscribe replies: %+v", r.Push)
	}
	s := r.Subscribe
	if r.Id != idPub+2 || s == nil || !s.Recovered {
		t.Fatalf("want a recovered subscribe, got %+v", r)
	}
	next := last + 1
	for _, p := range s.Publications {
		if p.Offset != next {
			t.Fatalf("recovered %d, want %d", p.Offset, next)
		}
		next++
	}
	if s.Offset != next-1 {
		t.Fatalf("subscribe offset %d, recovered up to %d", s.Offset, next-1)
	}
	for range 50 {
		if p := g.pub(ch); p.Offset != next {
			t.Fatalf("push %d, want %d", p.Offset, next)
		}
		next++
	}
}

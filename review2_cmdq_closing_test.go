package wsgate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview2CmdqClosingLeavesNothing: clients whose subscribes wait in
// the broker (creating a channel, joining one being created, recovering
// from history of an existing one), with more commands queued behind,
// are disconnected by /api/disconnect while the broker does not answer.
// When it answers, no channel, engine topic, worker or client is left.
func TestReview2CmdqClosingLeavesNothing(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	// An existing channel with history, held by a subscriber that stays.
	keep := dialNode(t, n.addr, false)
	keep.connect(token(t, jwt.MapClaims{"sub": "keep"}))
	for i := range 3 {
		n.publishAPI(t, "slow:old", fmt.Sprintf(`{"n":%d}`, i))
	}
	r := keep.subscribe(&protocol.SubscribeRequest{Channel: "slow:old"})
	if r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	epoch := r.Subscribe.Epoch
	base := n.NumChannels()
	g0 := runtime.NumGoroutine()
	b.shut()
	var gs []*gwClient
	for i := range 6 {
		g := dialNode(t, n.addr, i%2 == 1)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		var first *protocol.Command
		switch i % 3 {
		case 0:
			first = &protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:new"}}
		case 1:
			first = &protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: fmt.Sprint("slow:new", i)}}
		case 2:
			first = &protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:old", Recover: true, Epoch: epoch, Offset: 1}}
		}
		g.send(first,
			&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "chat:x"}},
			&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{}`)}})
		gs = append(gs, g)
	}
	waitUntil(t, "the subscribes waiting", func() bool { return b.nwaiting() == 5 })
	if m := n.apiCall(t, "disconnect", map[string]any{"user": "u"}); m["error"] != nil {
		t.Fatalf("api disconnect: %v", m)
	}
	for _, g := range gs {
		g.expectClose(3503)
	}
	b.release()
	waitUntil(t, "the clients gone", func() bool { return n.NumClients() == 1 })
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (n.NumChannels() != base || runtime.NumGoroutine() > g0+2) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := n.NumChannels(); got != base {
		t.Fatalf("channels: %d, want %d", got, base)
	}
	if got := runtime.NumGoroutine(); got > g0+2 {
		t.Fatalf("goroutines: %d, before %d", got, g0)
	}
	n.work.mu.Lock()
	w, q := n.work.n, len(n.work.runq)
	n.work.mu.Unlock()
	if w != 0 || q != 0 {
		t.Fatalf("workers %d, run list %d", w, q)
	}
	// The staying subscriber still gets the channel, once.
	off := n.publishAPI(t, "slow:old", `{"after":1}`)
	if p := keep.pub("slow:old"); p.Offset != off {
		t.Fatalf("keep got %d, want %d", p.Offset, off)
	}
	m := n.apiCall(t, "channels", map[string]any{})
	t.Logf("channels after: %v", m)
}

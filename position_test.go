package wsgate

import (
	"fmt"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestGatewayPositionedSubscribeLosesNothing: a publishes to a channel a
// is subscribed to without position while b subscribes to it with
// recovery. b's subscribe must not be answered with the publication's
// offset before the node delivered it: the node then dropped it as
// already delivered, and a never got it.
func TestGatewayPositionedSubscribeLosesNothing(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	cfg.Channel.Namespaces = append(cfg.Channel.Namespaces, Namespace{Name: "ar", ChannelOptions: ChannelOptions{
		HistorySize: 10, HistoryTTL: Duration(time.Minute), AllowRecovery: true, AllowSubscribeForClient: true}})
	n := startNode(t, cfg)
	a := dialNode(t, n.addr, false)
	a.connect(token(t, jwt.MapClaims{"sub": "a"}))
	b := dialNode(t, n.addr, false)
	b.connect(token(t, jwt.MapClaims{"sub": "b"}))
	for i := range 300 {
		name := fmt.Sprintf("ar:c%d", i)
		if r := a.subscribe(&protocol.SubscribeRequest{Channel: name}); r.Subscribe == nil || r.Subscribe.Positioned {
			t.Fatalf("a: %+v", r)
		}
		done := make(chan struct{})
		go func() { n.Publish(name, []byte(`1`), PublishOptions{}); close(done) }()
		r := b.subscribe(&protocol.SubscribeRequest{Channel: name, Recoverable: true})
		<-done
		if r.Subscribe == nil || !r.Subscribe.Positioned {
			t.Fatalf("b: %+v", r)
		}
		a.c.SetReadDeadline(time.Now().Add(time.Second))
		if p := a.pub(name); p.Offset != 1 {
			t.Fatalf("%s: a got offset %d", name, p.Offset)
		}
		a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		// b gets offset 1 once: live, unless its reply's position has it.
		if r.Subscribe.Offset == 0 {
			if p := b.pub(name); p.Offset != 1 {
				t.Fatalf("%s: b got offset %d", name, p.Offset)
			}
		}
		for _, g := range []*gwClient{a, b} {
			if r := g.call(&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: name}}); r.Unsubscribe == nil {
				t.Fatalf("unsubscribe: %+v", r)
			}
		}
	}
}

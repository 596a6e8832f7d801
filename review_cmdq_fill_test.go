package wsgate

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/loop"
)

// reviewDropBroker is a gatedBroker that can drop one live publication on its
// way to the node, as NATS does for a slow consumer: the next
// publication of the channel then makes the node fill the gap from
// history (HandlePublication → fill), with the gated History.
type reviewDropBroker struct {
	*gatedBroker
	h    BrokerHandler
	drop atomic.Bool // drop the next live publication
}

func (b *reviewDropBroker) Run(h BrokerHandler) error {
	b.h = h
	return b.MemoryBroker.Run(b)
}

// Publish is not gated: only History (the fill's read) waits.
func (b *reviewDropBroker) Publish(channel string, data []byte, o PublishOptions) (StreamPosition, error) {
	return b.MemoryBroker.Publish(channel, data, o)
}

func (b *reviewDropBroker) HandlePublication(channel string, pub *Publication, sp StreamPosition) {
	if b.drop.CompareAndSwap(true, false) {
		return
	}
	b.h.HandlePublication(channel, pub, sp)
}

// TestReviewCmdqGapFillHoldsEventLoop: the design says a client's event
// loop never waits for the broker and that a subscribe to a channel that
// exists with nothing to recover is answered on the loop at once. But a
// gap fill holds the channel's lock across a broker History call, and a
// subscribe run on the loop takes that lock: the loop, and every other
// client on it, waits for the broker. (With NATS: a JetStream read, up to
// its request timeout, at the moment NATS dropped live messages.)
func TestReviewCmdqGapFillHoldsEventLoop(t *testing.T) {
	b := &reviewDropBroker{gatedBroker: newGatedBroker()}
	cfg := slowConfig()
	n := startBehind(t, cfg, NodeOptions{Loop: loop.Options{NumLoops: 1}}, b, b.release)
	const ch = "slow:gap"
	a := dialNode(t, n.addr, false)
	a.connect(token(t, jwt.MapClaims{"sub": "a"}))
	if r := a.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	probe := dialNode(t, n.addr, false)
	probe.connect(token(t, jwt.MapClaims{"sub": "p"}))
	late := dialNode(t, n.addr, false)
	late.connect(token(t, jwt.MapClaims{"sub": "l"}))

	n.publishAPI(t, ch, `{"n":1}`)
	if p := a.pub(ch); p.Offset != 1 {
		t.Fatalf("first publication: offset %d", p.Offset)
	}
	b.drop.Store(true)
	n.publishAPI(t, ch, `{"n":2}`) // lost on its way to the node
	b.shut()
	go n.publish(pubAPI, ch, []byte(`{"n":3}`), PublishOptions{}) // its arrival fills 2 from history
	waitUntil(t, "the gap fill waiting for the broker", func() bool { return b.nwaiting() == 1 })

	// A subscribe to the existing channel, nothing to recover: the design
	// answers it on the loop at once.
	late.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch}})
	time.Sleep(100 * time.Millisecond) // let the loop take it first
	probe.c.SetDeadline(time.Now().Add(2 * time.Second))
	probe.send(&protocol.Command{Ping: &protocol.PingRequest{}})
	m, err := probe.readMessage()
	if err != nil {
		t.Fatalf("another client's ping on the loop was not answered within 2s while a gap fill waited for the broker: %v", err)
	}
	t.Logf("ping answered: %s", m)
}

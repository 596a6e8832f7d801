package wsgate

import (
	"fmt"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// TestGatewayResubscribeNoStalePublications: a client publishes to a
// channel it is subscribed to, unsubscribes and subscribes again with
// recovery, all in one message. The publication is on its way to the
// connection's event loop when the unsubscribe runs: it must not reach
// the client as a push after it left, only once, in the recovery of the
// subscribe reply (before the fix it came both ways: a duplicate).
//
// With a broker other than MemoryBroker, the publish waits for a worker
// and the commands behind it are queued: the unsubscribe leaves the
// engine topic as it arrives, on the loop (TestGatewayResubscribe…/queued).
func TestGatewayResubscribeNoStalePublications(t *testing.T) {
	t.Run("loop", func(t *testing.T) { resubscribeNoStale(t, NodeOptions{}) })
	t.Run("queued", func(t *testing.T) { resubscribeNoStale(t, NodeOptions{Broker: newGatedBroker()}) })
}

func resubscribeNoStale(t *testing.T, o NodeOptions) {
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNodeWith(t, cfg, o)
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	r := g.subscribe(&protocol.SubscribeRequest{Channel: "chat:d"})
	epoch, last := r.Subscribe.Epoch, r.Subscribe.Offset
	id := uint32(100)
	for round := range 20 {
		id += 3
		g.writeFrame(codec.OpText, fmt.Appendf(nil, `{"id":%d,"publish":{"channel":"chat:d","data":{"n":%d}}}`+"\n"+
			`{"id":%d,"unsubscribe":{"channel":"chat:d"}}`+"\n"+
			`{"id":%d,"subscribe":{"channel":"chat:d","recover":true,"epoch":"%s","offset":%d}}`,
			id, round, id+1, id+2, epoch, last))
		for {
			rr := g.reply()
			if rr.Push != nil {
				t.Fatalf("round %d: push %+v after the unsubscribe", round, rr.Push)
			}
			if rr.Error != nil {
				t.Fatalf("round %d: %+v", round, rr.Error)
			}
			if rr.Subscribe != nil {
				pubs := rr.Subscribe.Publications
				if !rr.Subscribe.Recovered || len(pubs) != 1 || pubs[0].Offset != last+1 {
					t.Fatalf("round %d: recovery from %d: %+v", round, last, rr.Subscribe)
				}
				last = pubs[0].Offset
				break
			}
		}
	}
}

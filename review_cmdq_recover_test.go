package wsgate

import (
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// reviewSlowHistory is a MemoryBroker whose history reads from a
// position (recovery) answer after a delay, as JetStream's do: the
// answer, read at the server, travels back while later publications
// reach the node live (2 ms: a broker in another zone, or a loaded one).
type reviewSlowHistory struct {
	*MemoryBroker
	delay time.Duration
}

func (b *reviewSlowHistory) History(channel string, o HistoryOptions) ([]*Publication, StreamPosition, error) {
	pubs, sp, err := b.MemoryBroker.History(channel, o)
	if o.Since != nil {
		time.Sleep(b.delay) // the answer on its way back
	}
	return pubs, sp, err
}

// TestReviewCmdqRecoverBusyChannel: a recovering subscribe to a channel
// that gets a publication during every history read (here ~2000/s with
// 2 ms reads) never settles: after maxReadRounds reads it is refused with
// error 100 (errChannelBusy), on every try. Recovery done under the
// channel's lock, as before the change, always succeeded; the SDK's
// retries here fail the same way for as long as the channel is busy.
func TestReviewCmdqRecoverBusyChannel(t *testing.T) {
	b := &reviewSlowHistory{MemoryBroker: NewMemoryBroker(0), delay: 2 * time.Millisecond}
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNodeWith(t, cfg, NodeOptions{Broker: b})
	const ch = "chat:hot"
	n.publishAPI(t, ch, `{"n":0}`)
	epoch := n.apiCall(t, "history", map[string]any{"channel": ch})["result"].(map[string]any)["epoch"].(string)
	// A subscriber keeps the channel on the node.
	keep := dialNode(t, n.addr, false)
	keep.connect(token(t, jwt.MapClaims{"sub": "k"}))
	if r := keep.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	top, stop := n.publishLoop(ch, 50*time.Microsecond)
	defer stop()
	waitUntil(t, "publications flowing", func() bool { return top.Load() > 20 })
	t0, s0 := time.Now(), top.Load()
	time.Sleep(200 * time.Millisecond)
	t.Logf("publish rate %.0f/s", float64(top.Load()-s0)/time.Since(t0).Seconds())

	const tries = 6
	failed := 0
	var last *protocol.Reply
	for range tries {
		g := dialNode(t, n.addr, false)
		g.connect(token(t, jwt.MapClaims{"sub": "r"}))
		r := g.subscribe(&protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: top.Load() - 3})
		if r.Error != nil || r.Subscribe == nil || !r.Subscribe.Recovered {
			failed++
			last = r
		}
		if r.Subscribe != nil {
			t.Logf("recovered=%v pubs=%d offset=%d top=%d", r.Subscribe.Recovered, len(r.Subscribe.Publications), r.Subscribe.Offset, top.Load())
		}
		g.c.Close()
	}
	if failed > 0 {
		t.Fatalf("%d of %d recovering subscribes to a busy channel failed (position 3 publications back, well within history); last: %+v",
			failed, tries, last)
	}
}

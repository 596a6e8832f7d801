package wsgate

import (
	"fmt"
	"sync"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview2CmdqTwoFillsAndRecovery: publications 2 and 3 are lost on
// their way to the node; 4 arrives (fill of 2-3, held at the broker),
// then a second copy of 4 (a second fill, held too), and meanwhile a client subscribes
// recovering from 1, or from 0 (its read held too). Whatever order the reads end
// in (the recovering subscribe, at the channel's offset 1, is answered
// at once), the subscriber gets 2, 3, 4 once each, in order, and so does the
// new one (recovered then live), with no record left after.
func TestReview2CmdqTwoFillsAndRecovery(t *testing.T) {
	for _, from := range []uint64{0, 1} {
		t.Run(fmt.Sprint("from=", from), func(t *testing.T) { review2TwoFills(t, from) })
	}
}

func review2TwoFills(t *testing.T, from uint64) {
	b := &reviewDropBroker{gatedBroker: newGatedBroker()}
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n := startBehind(t, cfg, NodeOptions{}, b, b.release)
	const ch = "slow:fills"
	a := dialNode(t, n.addr, false)
	a.connect(token(t, jwt.MapClaims{"sub": "a"}))
	epoch := subscribeFirst(t, n, a, ch)
	b.drop.Store(true)
	n.publishAPI(t, ch, `{"n":2}`) // lost on its way to the node
	b.drop.Store(true)
	n.publishAPI(t, ch, `{"n":3}`) // lost too
	b.shut()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.publish(pubAPI, ch, []byte(`{"n":4}`), PublishOptions{}) }()
	waitUntil(t, "the first fill held", func() bool { return b.nwaiting() == 1 })
	// A second copy of 4 arrives (with NATS: the publishing node hands
	// its own publication to HandlePublication, and gets it live too).
	pubs, sp, err := b.MemoryBroker.History(ch, HistoryOptions{Since: &StreamPosition{Offset: 3, Epoch: epoch}, Limit: 1})
	if err != nil || len(pubs) != 1 || pubs[0].Offset != 4 {
		t.Fatalf("history: %v %v", pubs, err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); n.HandlePublication(ch, pubs[0], sp) }()
	waitUntil(t, "the second fill held", func() bool { return b.nwaiting() == 2 })
	g := dialNode(t, n.addr, true)
	g.connect(token(t, jwt.MapClaims{"sub": "g"}))
	g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: from}})
	id := g.id
	if from == 0 {
		waitUntil(t, "the recovering read held", func() bool { return b.nwaiting() == 3 })
	}
	b.release()
	wg.Wait()
	top := n.publishAPI(t, ch, `{"n":5}`)
	for want := uint64(2); want <= top; want++ {
		if p := a.pub(ch); p.Offset != want {
			t.Fatalf("subscriber: %d, want %d", p.Offset, want)
		}
	}
	checkRecovered(t, "recovering", g, id, ch, from, top, cfg.Client.RecoveryMaxPublicationLimit)
	a.call(&protocol.Command{Ping: &protocol.PingRequest{}})
	for _, q := range a.queue {
		if q.Push != nil && q.Push.Pub != nil {
			t.Fatalf("subscriber: an extra publication %d", q.Push.Pub.Offset)
		}
	}
	chp := n.lookup(ch)
	chp.mu.Lock()
	defer chp.mu.Unlock()
	if chp.catching != 0 || len(chp.recent) != 0 || chp.top != top {
		t.Fatalf("channel after: catching %d recent %d top %d (want %d)", chp.catching, len(chp.recent), chp.top, top)
	}
}

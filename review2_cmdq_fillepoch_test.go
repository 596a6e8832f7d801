package wsgate

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestReview2CmdqFillEpochReverted: a gap fill reads history with the
// channel's lock released; meanwhile the stream's epoch changes (a
// publication of the new epoch arrives, and the subscribers are told
// their position is lost). The fill then delivers nothing, as designed,
// but the publication of the old epoch that started the fill goes on:
// it takes the channel back to the old epoch (and loses it a second
// time). Before, the fill held the lock and the old publication was
// handled first; the channel must end on the new epoch. (The client's
// session lock is held so that the channel is not released by the
// telling before it is checked: a channel with other subscribers joining
// stays.)
func TestReview2CmdqFillEpochReverted(t *testing.T) {
	b := &reviewDropBroker{gatedBroker: newGatedBroker()}
	n := startBehind(t, slowConfig(), NodeOptions{}, b, b.release)
	const ch = "slow:ep"
	a := dialNode(t, n.addr, false)
	cr := a.connect(token(t, jwt.MapClaims{"sub": "a"}))
	oldEpoch := subscribeFirst(t, n, a, ch)
	b.drop.Store(true)
	n.publishAPI(t, ch, `{"n":2}`) // lost on its way to the node
	b.shut()
	done := make(chan struct{})
	go func() { // its arrival fills 2 from history
		defer close(done)
		n.publish(pubAPI, ch, []byte(`{"n":3}`), PublishOptions{})
	}()
	waitUntil(t, "the gap fill waiting for the broker", func() bool { return b.nwaiting() == 1 })
	chp := n.lookup(ch)
	cs := n.clientsOf("", cr.Client, true)
	if len(cs) != 1 {
		t.Fatalf("client %s not found", cr.Client)
	}
	cs[0].mu.Lock()
	n.HandlePublication(ch, &Publication{Offset: 1, Data: []byte(`{"new":1}`)}, StreamPosition{Offset: 1, Epoch: "new-epoch"})
	b.release()
	<-done
	chp.mu.Lock()
	epoch, top := chp.epoch, chp.top
	chp.mu.Unlock()
	still := n.lookup(ch) == chp
	cs[0].mu.Unlock()
	if epoch != "new-epoch" {
		t.Fatalf("after the new epoch's publication 1 and the old epoch's publication 3 (which started the fill before it), the channel (in the node: %v) is at epoch %q offset %d (old epoch %q), want the new epoch", still, epoch, top, oldEpoch)
	}
}

package wsgate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestGatewayManyChannelsLost: the stream's epoch changes for many
// channels at once (NATS lost its storage; a node cut off for longer
// than history holds). Every subscriber gets its 2500 push and the
// channels take subscribes again, and telling them walks the node's
// clients once for the lot, not once per channel: with one walk (and a
// list of every client) per channel, m channels and n clients cost
// m×n lock passes and m lists of n clients (94 MiB allocated here,
// about 16 GB for 10k channels and 100k clients).
func TestGatewayManyChannelsLost(t *testing.T) {
	const m = 2000 // channels, one subscriber each
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNode(t, cfg)
	cs := make([]*gwClient, m)
	for i := range cs {
		cs[i] = dialNode(t, n.addr, false)
		cs[i].connect(token(t, jwt.MapClaims{"sub": fmt.Sprint("u", i)}))
		if r := cs[i].subscribe(&protocol.SubscribeRequest{Channel: fmt.Sprint("lost", i)}); r.Subscribe == nil {
			t.Fatalf("subscribe: %+v", r)
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range m {
		// A publication of another epoch, as a broker hands it.
		n.HandlePublication(fmt.Sprint("lost", i), &Publication{Offset: 1, Data: []byte(`1`)},
			StreamPosition{Offset: 1, Epoch: "other"})
	}
	waitUntil(t, "every channel taking subscribes again", func() bool {
		for i := range m {
			ch := n.lookup(fmt.Sprint("lost", i))
			if ch == nil {
				continue
			}
			ch.mu.Lock()
			lost := ch.lost
			ch.mu.Unlock()
			if lost {
				return false
			}
		}
		return true
	})
	runtime.ReadMemStats(&after)
	for i, c := range cs {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if r := c.reply(); r.Push == nil || r.Push.Unsubscribe == nil || r.Push.Unsubscribe.Code != 2500 || r.Push.Channel != fmt.Sprint("lost", i) {
			t.Fatalf("client %d: want a 2500 unsubscribe push, got %+v", i, r)
		}
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d KiB allocated", got>>10)
	if got > 16<<20 {
		t.Fatalf("telling %d channels' subscribers allocated %d MiB", m, got>>20)
	}
}

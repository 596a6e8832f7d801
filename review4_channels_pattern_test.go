package wsgate

import (
	"runtime"
	"strings"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview4ChannelsPatternCost: globRegexp turns each * into .*, so a
// pattern of k stars is a regexp program of about 3k instructions, and
// the NFA keeps all of them live on every byte of a channel name: the
// cost is not "linear in the name whatever the pattern" but name × k,
// in time and memory. The match runs with the channel shard's lock held,
// which also stops that shard's subscribes and deliveries.
//
// Measured on this machine for 1 MiB of "*" (a 16 MiB body is accepted):
// compile 12 s and 1 GB allocated, one match against a 200-byte name
// 11.8 s. Centrifugo v6.9.1 did not answer 100,000 stars either (the
// request hung), so the expected answer is a bound: a pattern is
// refused past some length, or runs of * collapse; either way one call
// must not allocate hundreds of MB. This test sends 256 Ki stars with
// one channel joined and checks the node allocated less than 64 MiB for
// the call.
func TestReview4ChannelsPatternCost(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: strings.Repeat("c", 200)}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	body := `{"pattern":"` + strings.Repeat("*", 256<<10) + `"}`
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	status, out := n.apiRaw(t, "channels", gwAPIKey, body)
	runtime.ReadMemStats(&m1)
	if len(out) > 200 {
		out = out[:200]
	}
	if alloc := (m1.TotalAlloc - m0.TotalAlloc) >> 20; alloc >= 64 {
		t.Errorf("channels with a pattern of %d stars: %d MiB allocated (status %d %s); want a bounded cost", 256<<10, alloc, status, out)
	}
}

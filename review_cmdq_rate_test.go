package wsgate

import (
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqRateCountedOnce: with a rate limit of 6 commands a
// second, a publish that waits for the broker (counted on the loop) and
// five commands queued behind it (counted on the worker) are all
// answered; the seventh gets 111. The waiting publish is not counted
// twice, nor the queued ones not at all. (The node clock must not tick
// between the sends and the worker: a tick gives a fresh window, and the
// test tries again.)
func TestReviewCmdqRateCountedOnce(t *testing.T) {
	for try := 0; ; try++ {
		if reviewRateOnce(t) || try == 3 {
			return
		}
	}
}

func reviewRateOnce(t *testing.T) bool {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = 6
	n, b := startGatedNode(t, cfg, NodeOptions{})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "r"}))
	b.shut()
	// A fresh window: wait for a tick of the node clock.
	for c := n.clock(); n.clock() == c; {
		time.Sleep(time.Millisecond)
	}
	start := n.clock()
	g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{}`)}})
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
	for range 6 {
		g.send(&protocol.Command{Ping: &protocol.PingRequest{}})
	}
	b.release()
	var codes []uint32
	for range 7 {
		r := g.reply()
		if r.Error != nil {
			codes = append(codes, r.Error.Code)
		} else {
			codes = append(codes, 0)
		}
	}
	if n.clock() != start {
		return false
	}
	want := []uint32{0, 0, 0, 0, 0, 0, 111}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("reply codes %v, want %v", codes, want)
		}
	}
	return true
}

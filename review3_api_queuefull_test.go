package wsgate

import (
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview3APISubscribeUserWithOneBusyClient: /api/subscribe of a
// user one of whose connections has a full command queue (its commands
// wait for a broker that does not answer) fails the whole request with
// {"error":{"code":100,"message":"internal server error"}} and stops at
// that connection: the user's other, idle connections that come after
// it are not subscribed. Centrifugo v6.9.1 answers {"result":{}} to
// /api/subscribe {"user":"u2","channel":"chat:s"} and subscribes every
// connection of the user (two connections, both got
// {"push":{"channel":"chat:s","subscribe":{"recoverable":true,"epoch":"ZrFpeTOk","positioned":true}}}).
// A user's busy connection is no server error, and it must not keep the
// request from the others.
func TestReview3APISubscribeUserWithOneBusyClient(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	cfg.Client.ChannelLimit, cfg.Client.MaxBatchSize = 2, 2
	n, b := startGatedNode(t, cfg, NodeOptions{})

	busy := dialNode(t, n.addr, false)
	busy.connect(token(t, jwt.MapClaims{"sub": "a"}))
	const idle = 6
	for range idle {
		g := dialNode(t, n.addr, false)
		g.connect(token(t, jwt.MapClaims{"sub": "a"}))
	}
	b.shut()
	busy.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:q"}})
	waitUntil(t, "the subscribe waiting", func() bool { return b.nwaiting() == 1 })
	busy.send(&protocol.Command{Ping: &protocol.PingRequest{}}, &protocol.Command{Ping: &protocol.PingRequest{}})
	busy.send(&protocol.Command{Ping: &protocol.PingRequest{}})
	waitUntil(t, "the busy client's queue full", func() bool {
		full := false
		for _, c := range n.clientsOf("a", "", false) {
			c.mu.Lock()
			full = full || (c.x != nil && len(c.x.cmds) == maxQueued(&n.cfg))
			c.mu.Unlock()
		}
		return full
	})

	status, out := n.apiRaw(t, "subscribe", gwAPIKey, `{"user":"a","channel":"chat:z"}`)
	subscribed := 0
	for _, c := range n.clientsOf("a", "", false) {
		c.mu.Lock()
		if c.subscribed("chat:z") >= 0 {
			subscribed++
		}
		c.mu.Unlock()
	}
	if status != 200 || string(out) != `{"result":{}}` || subscribed < idle {
		t.Fatalf("api subscribe of a user with a busy connection: %d %s, %d of the %d idle connections subscribed; Centrifugo: 200 {\"result\":{}}, all subscribed",
			status, out, subscribed, idle)
	}
}

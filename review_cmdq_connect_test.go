package wsgate

import (
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqQueuedConnect: a connect whose server-side channel must
// be created and recovered waits for the broker; the commands sent with
// it in one frame are answered after it, in order, and the recovered
// publication comes in the connect reply, then live ones once each.
func TestReviewCmdqQueuedConnect(t *testing.T) {
	for _, pb := range []bool{false, true} {
		n, b := startGatedNode(t, slowConfig(), NodeOptions{})
		off := n.publishAPI(t, "slow:srv", `{"n":0}`)
		n.publishAPI(t, "slow:srv", `{"n":1}`)
		epoch := n.apiCall(t, "history", map[string]any{"channel": "slow:srv"})["result"].(map[string]any)["epoch"].(string)
		g := dialNode(t, n.addr, pb)
		b.shut()
		g.send(
			&protocol.Command{Connect: &protocol.ConnectRequest{
				Token: token(t, jwt.MapClaims{"sub": "s", "channels": []string{"slow:srv"}}),
				Subs:  map[string]*protocol.SubscribeRequest{"slow:srv": {Recover: true, Epoch: epoch, Offset: off}},
			}},
			&protocol.Command{Ping: &protocol.PingRequest{}},
			&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "chat:y"}},
		)
		waitUntil(t, "the connect waiting", func() bool { return b.nwaiting() == 1 })
		b.release()
		r := g.reply()
		if r.Id != 1 || r.Connect == nil {
			t.Fatalf("connect: %+v", r)
		}
		s := r.Connect.Subs["slow:srv"]
		if s == nil || !s.Recovered || len(s.Publications) != 1 || s.Publications[0].Offset != off+1 {
			t.Fatalf("server-side recovery: %+v", s)
		}
		if r := g.reply(); r.Id != 2 || r.Ping == nil {
			t.Fatalf("ping: %+v", r)
		}
		if r := g.reply(); r.Id != 3 || r.Subscribe == nil {
			t.Fatalf("subscribe: %+v", r)
		}
		n.publishAPI(t, "slow:srv", `{"n":2}`)
		if p := g.pub("slow:srv"); p.Offset != off+2 {
			t.Fatalf("live: %d", p.Offset)
		}
		if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
			t.Fatalf("ping: %+v", r)
		}
		if len(g.queue) != 0 {
			t.Fatalf("more pushes: %+v", g.queue)
		}
	}
}

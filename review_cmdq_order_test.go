package wsgate

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqMixedBatchOrder: one frame mixes commands the loop
// answers with ones that wait for the broker (and duplicate ids, errors
// 108 and 103, an unsubscribe of a live channel); frames that follow
// reuse the read buffer while the first waits. Every reply comes in the
// order sent, and the data queued are those sent, byte for byte.
func TestReviewCmdqMixedBatchOrder(t *testing.T) {
	for _, pb := range []bool{false, true} {
		t.Run(fmt.Sprint("protobuf=", pb), func(t *testing.T) { reviewMixedBatch(t, pb) })
	}
}

func reviewMixedBatch(t *testing.T, pb bool) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	g := dialNode(t, n.addr, pb)
	g.connect(token(t, jwt.MapClaims{"sub": "m"}))
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: "chat:live"}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	b.shut()
	payload := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat(string(rune('a'+i%26)), 200+i)))
	}
	type want struct {
		id   uint32
		kind string
	}
	var wants []want
	cmd := func(c *protocol.Command, kind string) *protocol.Command {
		g.id++
		c.Id = g.id
		wants = append(wants, want{c.Id, kind})
		return c
	}
	frame1 := []*protocol.Command{
		cmd(&protocol.Command{Ping: &protocol.PingRequest{}}, "ping"),
		cmd(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:o", Data: payload(0)}}, "publish"),
		cmd(&protocol.Command{Ping: &protocol.PingRequest{}}, "ping"),
		cmd(&protocol.Command{Presence: &protocol.PresenceRequest{Channel: "chat:live"}}, "err108"),
		cmd(&protocol.Command{SubRefresh: &protocol.SubRefreshRequest{Channel: "chat:none", Token: "x"}}, "err103"),
		cmd(&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: "chat:live"}}, "unsubscribe"),
		cmd(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:o", Data: payload(1)}}, "publish"),
	}
	// A duplicate id: both run.
	dup := &protocol.Command{Id: g.id, Ping: &protocol.PingRequest{}}
	wants = append(wants, want{g.id, "ping"})
	frame1 = append(frame1, dup)
	g.send(frame1...)
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
	for i := 2; i < 12; i++ {
		g.send(
			cmd(&protocol.Command{Ping: &protocol.PingRequest{}}, "ping"),
			cmd(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:o", Data: payload(i)}}, "publish"),
			cmd(&protocol.Command{History: &protocol.HistoryRequest{Channel: "slow:o", Limit: -1}}, "history"),
		)
	}
	b.release()
	for i, w := range wants {
		r := g.reply()
		if r.Push != nil {
			t.Fatalf("reply %d: a push %+v (chat:live was not published to)", i, r.Push)
		}
		if r.Id != w.id {
			t.Fatalf("reply %d: id %d, want %d (%s)", i, r.Id, w.id, w.kind)
		}
		ok := false
		switch w.kind {
		case "ping":
			ok = r.Ping != nil
		case "publish":
			ok = r.Publish != nil
		case "history":
			ok = r.History != nil
		case "unsubscribe":
			ok = r.Unsubscribe != nil
		case "err108":
			ok = r.Error != nil && r.Error.Code == 108
		case "err103":
			ok = r.Error != nil && r.Error.Code == 103
		}
		if !ok {
			t.Fatalf("reply %d: %+v, want %s", i, r, w.kind)
		}
	}
	res := n.apiCall(t, "history", map[string]any{"channel": "slow:o", "limit": -1})["result"].(map[string]any)
	pubs := res["publications"].([]any)
	if len(pubs) != 12 {
		t.Fatalf("%d publications, want 12", len(pubs))
	}
	for i, p := range pubs {
		var got bytes.Buffer
		data := p.(map[string]any)["data"]
		fmt.Fprintf(&got, "%v", data)
		want := fmt.Sprint(map[string]any{"i": float64(i), "pad": strings.Repeat(string(rune('a'+i%26)), 200+i)})
		if got.String() != want {
			t.Fatalf("publication %d: %s, want %s", i, got.String(), want)
		}
	}
}

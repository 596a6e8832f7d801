package wsgate

import (
	"context"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/loop"
)

// historyLen returns the number of publications in channel's history.
func (n *gwNode) historyLen(t *testing.T, channel string) int {
	t.Helper()
	res := n.apiCall(t, "history", map[string]any{"channel": channel, "limit": -1})["result"].(map[string]any)
	pubs, _ := res["publications"].([]any)
	return len(pubs)
}

// reviewQueuedAfterDisconnect queues, behind a publish that waits for
// the broker, a publish to an ungated channel, disconnects the client
// with disc, opens the gate, and reports how many publications the
// ungated channel got once no worker runs. The client never answers the
// close frame (as a peer whose network went away), so OnClose only runs
// at the close timeout.
func reviewQueuedAfterDisconnect(t *testing.T, disc func(n *gwNode, g *gwClient)) int {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{Loop: loop.Options{CloseTimeout: 20 * time.Second}})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "victim"}))
	b.shut()
	g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{"n":1}`)}})
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
	g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:after", Data: []byte(`{"sent":"before the disconnect"}`)}})
	waitUntil(t, "the second publish queued", func() bool {
		queued := 0
		n.eachClient(func(c *session) {
			c.mu.Lock()
			if c.x != nil {
				queued += len(c.x.cmds)
			}
			c.mu.Unlock()
		})
		return queued == 2
	})
	disc(n, g)
	b.release()
	waitUntil(t, "workers done", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return n.work.n == 0
	})
	return n.historyLen(t, "chat:after")
}

// TestReviewCmdqQueuedRunsAfterAPIDisconnect: a client disconnected by
// /api/disconnect (a ban: 3503, no reconnect) has a command queued behind
// one waiting for the broker. After the API call returned and the client
// got its close frame, the queued publish must not be made.
func TestReviewCmdqQueuedRunsAfterAPIDisconnect(t *testing.T) {
	got := reviewQueuedAfterDisconnect(t, func(n *gwNode, g *gwClient) {
		n.apiCall(t, "disconnect", map[string]any{"user": "victim"})
		g.expectClose(uint16(disconnectForceNoReconn.Code))
	})
	if got != 0 {
		t.Fatalf("a publish queued by a client was made after /api/disconnect had disconnected it: %d publication(s) in chat:after", got)
	}
}

// TestReviewCmdqQueuedRunsAfterDrain: Drain's documentation says that a
// client's commands still waiting for the broker when it is disconnected
// are dropped unanswered. Here a queued publish is still made after
// Drain disconnected its client.
func TestReviewCmdqQueuedRunsAfterDrain(t *testing.T) {
	done := make(chan error, 1)
	got := reviewQueuedAfterDisconnect(t, func(n *gwNode, g *gwClient) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			done <- n.Drain(ctx, 0)
		}()
		g.expectClose(uint16(disconnectShutdown.Code))
	})
	<-done
	if got != 0 {
		t.Fatalf("a publish queued by a client was made after Drain had disconnected it: %d publication(s) in chat:after", got)
	}
}

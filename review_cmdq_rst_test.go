package wsgate

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqPeerResetWhileQueued: clients reset their connections
// (RST) while their subscribes (new channels, recovering ones), publishes
// and histories wait for the broker, and more wait in the run list. Once
// the broker answers, nothing is left: no worker, no channel, no
// goroutine, no connection.
func TestReviewCmdqPeerResetWhileQueued(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	off := n.publishAPI(t, "slow:r", `{"n":0}`)
	n.publishAPI(t, "slow:r", `{"n":1}`)
	epoch := n.apiCall(t, "history", map[string]any{"channel": "slow:r"})["result"].(map[string]any)["epoch"].(string)
	const clients = maxWorkers + 16
	gs := make([]*gwClient, clients)
	for i := range gs {
		gs[i] = dialNode(t, n.addr, i%2 == 1)
		gs[i].connect(token(t, jwt.MapClaims{"sub": "x"}))
	}
	runtime.GC()
	before := runtime.NumGoroutine()
	b.shut()
	for i, g := range gs {
		g.send(
			&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: fmt.Sprint("slow:n", i%5)}},
			&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:r", Recover: true, Epoch: epoch, Offset: off}},
			&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:r", Data: []byte(`{}`)}},
			&protocol.Command{History: &protocol.HistoryRequest{Channel: "slow:r", Limit: -1}},
			&protocol.Command{Ping: &protocol.PingRequest{}},
		)
	}
	waitUntil(t, "workers busy", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return n.work.n == maxWorkers && len(n.work.runq) == clients-maxWorkers
	})
	for _, g := range gs {
		g.c.(*net.TCPConn).SetLinger(0)
		g.c.Close()
	}
	waitUntil(t, "connections closed", func() bool { return n.Server().Conns() == 0 })
	b.release()
	waitUntil(t, "nothing left", func() bool {
		n.work.mu.Lock()
		busy, q := n.work.n, len(n.work.runq)
		n.work.mu.Unlock()
		return busy == 0 && q == 0 && n.NumChannels() == 0
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines, %d before", g, before)
	}
	if c := n.NumClients(); c != 0 {
		t.Fatalf("NumClients %d", c)
	}
}

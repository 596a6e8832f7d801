package wsgate

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqQueueBytes: while the broker does not answer, a client's
// queue is bounded in commands (maxQueued: channel_limit +
// max_batch_size = 228 by default), not in bytes: each queued publish
// may carry up to max_command_size (64 KiB) of data, so one client makes
// the node hold about 14 MiB, and a thousand such clients 14 GiB. The
// command rate limit does not apply on arrival (queued commands are
// counted when a worker runs them). Before the change the loop did not
// read further while a command waited, and TCP pushed back.
//
// The bound asserted (4 MiB per client) is the reviewer's: the design
// gives none in bytes.
func TestReviewCmdqQueueBytes(t *testing.T) {
	cfg := slowConfig()
	n, b := startGatedNode(t, cfg, NodeOptions{})
	const clients = 2
	gs := make([]*gwClient, clients)
	for i := range gs {
		gs[i] = dialNode(t, n.addr, false)
		gs[i].connect(token(t, jwt.MapClaims{"sub": "f"}))
	}
	b.shut()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	data := []byte(`"` + string(bytes.Repeat([]byte("x"), int(n.cfg.Client.MaxCommandSize)-200)) + `"`)
	max := maxQueued(&n.cfg)
	for _, g := range gs {
		for i := 0; i < max; i++ {
			g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: fmt.Sprint("slow:m", i%4), Data: data}})
		}
	}
	// Each client has every command queued, or was disconnected for
	// queuing too much (then its queue is gone).
	waitUntil(t, "every command queued or its client disconnected", func() bool {
		present, done := 0, 0
		n.eachClient(func(c *session) {
			present++
			c.mu.Lock()
			if c.closing || (c.x != nil && len(c.x.cmds) == max) {
				done++
			}
			c.mu.Unlock()
		})
		return done+clients-present == clients
	})
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / clients
	t.Logf("%d commands of %d KiB sent per client; heap +%.1f MiB per client", max, len(data)>>10, float64(per)/(1<<20))
	if per > 4<<20 {
		t.Fatalf("one client flooding a stalled broker makes the node hold %.1f MiB (bound in commands, not bytes)", float64(per)/(1<<20))
	}
	// The bound is enforced as the command bound is: 3013, the client
	// reconnects.
	for _, g := range gs {
		g.expectClose(uint16(disconnectTooMany.Code))
	}
}

package wsgate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestDrain: Ready fails once Drain has begun; each client gets the
// publications queued for it before its close frame, even the first one,
// closed at once while megabytes wait in its queue; every client is
// closed with 3001, spread over the drain period.
func TestDrain(t *testing.T) {
	n := startNode(t, gwConfig())
	const clients, pubs = 8, 16
	var gs []*gwClient
	for range clients {
		g := dialNode(t, n.addr, false)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		if r := g.subscribe(&protocol.SubscribeRequest{Channel: "plain:d"}); r.Error != nil {
			t.Fatalf("subscribe: %+v", r)
		}
		gs = append(gs, g)
	}
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready before Drain: %v", err)
	}
	// The clients read nothing yet: most of these wait in the server's
	// queues when Drain starts.
	big := `{"s":"` + strings.Repeat("x", 48<<10) + `"}`
	for range pubs {
		n.publishAPI(t, "plain:d", big)
	}
	const period = 400 * time.Millisecond
	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- n.Drain(context.Background(), period) }()
	waitUntil(t, "Ready to fail", func() bool { return errors.Is(n.Ready(), ErrDraining) })
	var last time.Duration
	for i, g := range gs {
		for j := range pubs {
			if p := g.pub("plain:d"); len(p.Data) != len(big) {
				t.Fatalf("client %d publication %d: %d bytes", i, j, len(p.Data))
			}
		}
		g.expectClose(3001)
		last = time.Since(start)
		g.c.Close() // instead of answering the close frame
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// Client i of 8 is closed at i*50ms: the last at 350ms.
	if last < period*3/4 {
		t.Fatalf("the last client was closed %v after Drain began: not spread over %v", last, period)
	}
	if !errors.Is(n.Ready(), ErrDraining) {
		t.Fatal("Ready after Drain: want ErrDraining")
	}
}

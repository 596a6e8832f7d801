package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
)

// gated is a recorder whose first HandlePublication blocks until open is
// closed: a node whose delivery is stalled.
type gated struct {
	*recorder
	open  chan struct{}
	first bool
}

func (g *gated) HandlePublication(ch string, p *wsgate.Publication, sp wsgate.StreamPosition) {
	if !g.first {
		g.first = true
		<-g.open
	}
	g.recorder.HandlePublication(ch, p, sp)
}

// lastOffset is the offset of the last publication handed for ch.
func (r *recorder) lastOffset(ch string) uint64 {
	p := r.get(ch)
	if len(p) == 0 {
		return 0
	}
	return p[len(p)-1].Offset
}

// A node too slow to take a burst of live publications (its queue from
// NATS full: NATS drops for it) must still be handed the channel's last
// publication once it catches up, so that it fills what was dropped
// from history even when nothing more is published.
func TestSlowConsumerTail(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	a := newBroker(t, s.ClientURL(), "a", nil)
	g := &gated{recorder: newRecorder(), open: make(chan struct{})}
	b := newBroker(t, s.ClientURL(), "b", g)
	if err := b.Subscribe("burst"); err != nil {
		t.Fatal(err)
	}
	const n = 1<<14 + 500 // more than the queue between NATS and the handler holds
	var last wsgate.StreamPosition
	var err error
	for i := range n {
		if last, err = a.Publish("burst", fmt.Appendf(nil, "%d", i), hist); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.Conn().Flush()
	time.Sleep(100 * time.Millisecond)
	close(g.open)
	waitFor(t, func() bool { return g.lastOffset("burst") == last.Offset })
}

// A publish whose JetStream answer comes too late (slow NATS) fails, but
// the publication may be stored, and then the other nodes deliver it:
// the publishing node must hand it to its own subscribers too, even when
// nothing more is published.
func TestSlowNATSStoredPublishReachesOwnNode(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	ra := newRecorder()
	a, err := natsbroker.New(natsbroker.Options{URL: "nats://" + r.addr(), Name: "a", MaxHistorySize: 100,
		Timeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Run(ra); err != nil {
		t.Fatal(err)
	}
	rb := newRecorder()
	b := newBroker(t, s.ClientURL(), "b", rb)
	for _, x := range []*natsbroker.Broker{a, b} {
		if err := x.Subscribe("slow"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return a.Ready() == nil })
	// A first publish: a knows the channel's top, so that the next one is
	// a single JetStream request, the append.
	if _, err := a.Publish("slow", []byte("1"), hist); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "slow", 1)
	r.slow(time.Second)
	_, err = a.Publish("slow", []byte("2"), hist)
	r.slow(0)
	if err == nil {
		t.Fatal("publish answered after its timeout")
	}
	if pubs, _, err := b.History("slow", wsgate.HistoryOptions{Limit: -1}); err != nil || offsets(pubs) != "1,2" {
		t.Fatalf("history %s %v: the publish that timed out was not stored, the test proves nothing", offsets(pubs), err)
	}
	rb.wait(t, "slow", 2)
	waitFor(t, func() bool { return ra.lastOffset("slow") == 2 })
}

// A publication larger than NATS carries can reach no other node: it is
// refused as a whole, not delivered on the publishing node alone.
func TestPublishBeyondMaxPayload(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	ra, rb := newRecorder(), newRecorder()
	a := newBroker(t, s.ClientURL(), "a", ra)
	b := newBroker(t, s.ClientURL(), "b", rb)
	if err := b.Subscribe("big"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), int(a.Conn().MaxPayload())+1)
	for _, opts := range []wsgate.PublishOptions{{}, hist} {
		if _, err := a.Publish("big", big, opts); err == nil {
			t.Fatalf("publish of %d bytes (max payload %d) succeeded", len(big), a.Conn().MaxPayload())
		}
	}
	if n := len(ra.get("big")); n != 0 {
		t.Fatalf("publishing node handed %d publications NATS could not carry", n)
	}
}

// A node whose link to NATS goes silent (no reset, no close) must notice
// it within seconds with the default options: it is then disconnected,
// reconnects when the link is back and catches up on what it missed.
// (nats.go's default ping interval, two minutes with two pings
// outstanding, left it "connected" and deaf for four to six minutes.)
func TestSilentLinkDetected(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	a := newBroker(t, s.ClientURL(), "a", nil)
	rb := newRecorder()
	b := newBroker(t, "nats://"+r.addr(), "b", rb)
	if err := b.Subscribe("quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish("quiet", []byte("1"), hist); err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "quiet", 1)
	r.blackhole()
	var last wsgate.StreamPosition
	for i := range 5 {
		var err error
		if last, err = a.Publish("quiet", fmt.Appendf(nil, "%d", i), hist); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return !b.Conn().IsConnected() })
	r.restore()
	waitFor(t, func() bool { return b.Conn().IsConnected() && rb.lastOffset("quiet") == last.Offset })
}

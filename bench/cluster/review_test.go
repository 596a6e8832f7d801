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

// Many channels subscribed on a node cut from NATS while another node
// publishes to each: once the link is back, the node is handed every
// channel's last publication (caught up in batches).
func TestCatchUpManyChannels(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	a := newBroker(t, s.ClientURL(), "a", nil)
	rb := newRecorder()
	b := newBroker(t, "nats://"+r.addr(), "b", rb)
	const n = 1000
	for i := range n {
		if err := b.Subscribe(fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	r.cut()
	waitFor(t, func() bool { return !b.Conn().IsConnected() })
	for i := range n {
		if _, err := a.Publish(fmt.Sprint("m", i), []byte("x"), hist); err != nil {
			t.Fatal(err)
		}
	}
	r.restore()
	waitFor(t, func() bool {
		for i := range n {
			if rb.lastOffset(fmt.Sprint("m", i)) != 1 {
				return false
			}
		}
		return true
	})
}

// The same idempotency key published at once through two nodes, for many
// keys: each key is stored once, and both nodes answer its position.
func TestIdempotencyKeyRace(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	nodes := [2]*natsbroker.Broker{newBroker(t, s.ClientURL(), "a", nil), newBroker(t, s.ClientURL(), "b", nil)}
	const keys = 50
	var got [2][keys]wsgate.StreamPosition
	var errs [2]error
	done := make(chan int)
	for ni, nb := range nodes {
		go func() {
			defer func() { done <- ni }()
			for k := range keys {
				o := hist
				o.IdempotencyKey = fmt.Sprint("key", k)
				if got[ni][k], errs[ni] = nb.Publish("idem", fmt.Appendf(nil, "%d", k), o); errs[ni] != nil {
					return
				}
			}
		}()
	}
	<-done
	<-done
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	for k := range keys {
		if got[0][k] != got[1][k] {
			t.Errorf("key %d: node a answered %+v, node b %+v", k, got[0][k], got[1][k])
		}
	}
	pubs, _, err := nodes[0].History("idem", wsgate.HistoryOptions{Limit: -1})
	if err != nil || len(pubs) != keys {
		t.Fatalf("history holds %d publications for %d keys (%v)", len(pubs), keys, err)
	}
}

// A publish repeated with its idempotency key after its publication left
// JetStream (a busy channel) is not published again and answers
// success, not an error: a publisher retrying would otherwise fail for
// the whole idempotency window.
func TestIdempotencyKeyAfterTrim(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	a := newBroker(t, s.ClientURL(), "a", nil)
	b := newBroker(t, s.ClientURL(), "b", nil)
	small := wsgate.PublishOptions{HistorySize: 1, HistoryTTL: time.Hour, IdempotencyKey: "once"}
	first, err := a.Publish("trim", []byte("1"), small)
	if err != nil {
		t.Fatal(err)
	}
	small.IdempotencyKey = ""
	for range 1001 { // JetStream keeps MaxHistorySize+1 per channel
		if _, err := a.Publish("trim", []byte("more"), small); err != nil {
			t.Fatal(err)
		}
	}
	small.IdempotencyKey = "once"
	// The publishing node remembers the position it answered.
	if sp, err := a.Publish("trim", []byte("1"), small); err != nil || sp != first {
		t.Errorf("repeated publish on the first node: %+v %v; want %+v", sp, err, first)
	}
	// Another node cannot know it any more: success, position unknown.
	if sp, err := b.Publish("trim", []byte("1"), small); err != nil || (sp != first && sp != wsgate.StreamPosition{}) {
		t.Errorf("repeated publish on another node: %+v %v; want %+v or none", sp, err, first)
	}
	if _, sp, _ := a.History("trim", wsgate.HistoryOptions{}); sp.Offset != 1002 {
		t.Errorf("channel at offset %d after 1002 publications and 2 repeats", sp.Offset)
	}
}

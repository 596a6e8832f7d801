package cluster

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
)

// A node with more lagging channels than one catch-up batch, whose
// catch-up reads all fail (core NATS up, JetStream not answering): the
// reads are tried again a second later, and meanwhile the node's live
// publications keep being delivered. Reading the whole batch one
// timeout after another on the dispatch goroutine, and the next batch
// at once, held every live publication of the node for minutes.
func TestCatchUpFailingReadsKeepLiveDelivery(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	a := newBroker(t, s.ClientURL(), "a", nil)
	rb := newRecorder()
	const timeout = 500 * time.Millisecond
	b, err := natsbroker.New(natsbroker.Options{URL: s.ClientURL(), Name: "b", MaxHistorySize: 100,
		Timeout: timeout, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Run(rb); err != nil {
		t.Fatal(err)
	}
	const n = 200 // more than a catch-up batch (64)
	for i := range n {
		if err := b.Subscribe(fmt.Sprint("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return b.Ready() == nil })
	if err := s.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	// A reconnection: every subscribed channel is to be caught up, and
	// no read is answered.
	if err := b.Conn().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Conn().IsConnected() })
	time.Sleep(2 * timeout)
	// A publication without history travels on core NATS alone.
	start := time.Now()
	if _, err := a.Publish("f7", []byte("live"), wsgate.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(2*timeout + time.Second)
	for len(rb.get("f7")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(rb.get("f7")) == 0 {
		t.Fatalf("a live publication not delivered %v after it was published, while catch-up reads time out", time.Since(start))
	}
	t.Logf("delivered in %v", time.Since(start))
}

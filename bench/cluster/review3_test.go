package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats-server/v2/server"

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

// A node's answer to a survey (its /api/channels list) larger than NATS
// max_payload reaches the asking node whole. Sent as one message, NATS
// refused it, and the asking node waited its timeout and answered
// /api/channels without that node's channels, as if it had none: with
// the default max_payload (1 MiB), a node with some 30k channels.
func TestSurveyAnswerBeyondMaxPayload(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	var list strings.Builder
	list.WriteString(`{"channels":{`)
	for i := range 3000 {
		if i > 0 {
			list.WriteByte(',')
		}
		fmt.Fprintf(&list, `"room:%060d":{"num_clients":1}`, i)
	}
	list.WriteString(`}}`)
	big := []byte(list.String()) // about 4 x max_payload
	bs := [2]*natsbroker.Broker{}
	for i := range bs {
		bs[i] = newBroker(t, s.ClientURL(), fmt.Sprint("n", i), nil)
		err := bs[i].RunCluster(func() wsgate.NodeInfo {
			return wsgate.NodeInfo{UID: fmt.Sprint("uid", i), Name: fmt.Sprint("n", i)}
		}, func(string, []byte) []byte {
			if i == 1 {
				return big
			}
			return []byte(`{"channels":{}}`)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(bs[0].Nodes()) == 1 })
	answers, err := bs[0].Survey("channels", []byte(`{}`))
	if err != nil || len(answers) != 1 || !bytes.Equal(answers[0], big) {
		t.Fatalf("survey: %d answers (%v), want node n1's list of %d bytes", len(answers), err, len(big))
	}
}

// The same idempotency key published at once twice through one node, for
// a publication without history: it is published once, as through the
// memory broker (which holds the key from check to remember). Without
// that, both publishes saw the key unknown and both went out.
func TestIdempotencyKeyRaceWithoutHistory(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	ra := newRecorder()
	a := newBroker(t, s.ClientURL(), "a", ra)
	rb := newRecorder()
	b := newBroker(t, s.ClientURL(), "b", rb)
	if err := b.Subscribe("idem0"); err != nil {
		t.Fatal(err)
	}
	const keys = 200
	for k := range keys {
		start := make(chan struct{})
		done := make(chan error, 2)
		for range 2 {
			go func() {
				<-start
				o := wsgate.PublishOptions{IdempotencyKey: fmt.Sprint("key", k)}
				_, err := a.Publish("idem0", fmt.Appendf(nil, "%d", k), o)
				done <- err
			}()
		}
		close(start)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	// A last publication without a key marks the end of the stream.
	if _, err := a.Publish("idem0", []byte("end"), wsgate.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{ra, rb} {
		waitFor(t, func() bool {
			p := r.get("idem0")
			return len(p) > 0 && string(p[len(p)-1].Data) == "end"
		})
	}
	for name, r := range map[string]*recorder{"a": ra, "b": rb} {
		if got := len(r.get("idem0")) - 1; got != keys {
			t.Errorf("node %s handed %d publications for %d keys", name, got, keys)
		}
	}
}

// Subscribes of different channels made at once (the clients of a dead
// node reconnecting to this one, each to its own channel) wait for their
// NATS round trips together, not one after another: a link with d of
// latency takes about d for all, where one round trip at a time under
// the broker's subscription lock took n×d (and held the dispatch
// goroutine's catch-up, which takes that lock, as long).
func TestConcurrentSubscribesNotSerialised(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	b := newBroker(t, "nats://"+r.addr(), "b", newRecorder())
	waitFor(t, func() bool { return b.Ready() == nil })
	const n, d = 40, 250 * time.Millisecond
	r.slow(d)
	start := time.Now()
	done := make(chan error, n)
	for i := range n {
		go func() { done <- b.Subscribe(fmt.Sprint("conc", i)) }()
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r.slow(0)
	// One after another: n×d = 10 s; together: a few d.
	if el := time.Since(start); el > n*d/2 {
		t.Fatalf("%d subscribes over a link of %v latency took %v: their round trips were made one at a time", n, d, el)
	}
}

// A live publication to a channel with subscribers is not held behind
// other clients' subscribes to new channels that wait for JetStream.
// Those subscribes read the channel's position from JetStream; run on
// the connections' event loops, while JetStream did not answer (core
// NATS up) every connection of a loop waited the request timeout (2 s)
// per such subscribe queued on it: 1.9 to 9.9 s for a delivery that
// takes 3 ms otherwise. They now run on the node's workers.
func TestLiveDeliveryNotHeldBySubscribesWaitingForJetStream(t *testing.T) {
	dir, gateBin, cfgFile, s := natsNodes(t)
	a := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "a")
	ep := "ws://" + a.ws + "/connection/websocket"
	connect := func(user string) *centrifuge.Client {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user}).SignedString([]byte(secret))
		c := centrifuge.NewJsonClient(ep, centrifuge.Config{Token: tok})
		t.Cleanup(c.Close)
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	delivered := make(chan time.Time, 16)
	hot := connect("hot")
	sub, err := hot.NewSubscription("hot", centrifuge.SubscriptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan struct{}, 1)
	sub.OnSubscribed(func(centrifuge.SubscribedEvent) { subscribed <- struct{}{} })
	sub.OnPublication(func(centrifuge.PublicationEvent) { delivered <- time.Now() })
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}
	// Clients on every event loop of the node.
	others := make([]*centrifuge.Client, 4)
	for i := range others {
		others[i] = connect(fmt.Sprint("o", i))
	}
	waitUntil(t, "clients connected", 10*time.Second, func() bool {
		for _, c := range others {
			if c.State() != centrifuge.StateConnected {
				return false
			}
		}
		return true
	})
	if err := s.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	for i, c := range others {
		s, err := c.NewSubscription(fmt.Sprint("new", i), centrifuge.SubscriptionConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the subscribes are waiting for JetStream
	start := time.Now()
	// Without history: core NATS only, and this node's own subscriber.
	if _, err := api(a, "publish", map[string]any{"channel": "hot", "data": map[string]int{"x": 1}, "skip_history": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-delivered:
		// Half the node's JetStream request timeout (2 s): a delivery
		// that waited for one such timeout took longer.
		d := at.Sub(start)
		t.Logf("delivered %v after it was published", d)
		if d > time.Second {
			t.Fatalf("publication delivered %v after it was published: held by subscribes waiting for JetStream on the event loop", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("publication not delivered")
	}
}

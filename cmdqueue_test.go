package wsgate

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/loop"
)

// gatedBroker is a MemoryBroker whose calls for channels named "slow:…"
// wait while the gate is shut, as a broker that does not answer.
type gatedBroker struct {
	*MemoryBroker
	mu      sync.Mutex
	open    chan struct{} // closed: the gate is open
	waiting int           // calls waiting at the gate
}

// newGatedBroker returns a gatedBroker whose gate is open.
func newGatedBroker() *gatedBroker {
	open := make(chan struct{})
	close(open)
	return &gatedBroker{MemoryBroker: NewMemoryBroker(0), open: open}
}

// startGatedNode starts a node on cfg with opts and a gatedBroker,
// whose gate is opened at cleanup before the node shuts down.
func startGatedNode(t testing.TB, cfg Config, opts NodeOptions) (*gwNode, *gatedBroker) {
	t.Helper()
	b := newGatedBroker()
	return startBehind(t, cfg, opts, b, b.release), b
}

// startBehind starts a node on cfg with opts and broker b; release, which
// opens b's gate, runs at cleanup before the node shuts down.
func startBehind(t testing.TB, cfg Config, opts NodeOptions, b Broker, release func()) *gwNode {
	t.Helper()
	opts.Broker = b
	n := startNodeWith(t, cfg, opts)
	t.Cleanup(release)
	return n
}

// subscribeFirst subscribes g to ch and checks that a first publication
// reaches it at offset 1; it returns the channel's epoch.
func subscribeFirst(t *testing.T, n *gwNode, g *gwClient, ch string) string {
	t.Helper()
	r := g.subscribe(&protocol.SubscribeRequest{Channel: ch})
	if r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	n.publishAPI(t, ch, `{"n":1}`)
	if p := g.pub(ch); p.Offset != 1 {
		t.Fatalf("first publication: offset %d", p.Offset)
	}
	return r.Subscribe.Epoch
}

// shut closes the gate.
func (b *gatedBroker) shut() {
	b.mu.Lock()
	b.open = make(chan struct{})
	b.mu.Unlock()
}

func (b *gatedBroker) gate(channel string) {
	if !strings.HasPrefix(channel, "slow:") {
		return
	}
	b.mu.Lock()
	open := b.open
	b.waiting++
	b.mu.Unlock()
	<-open
	b.mu.Lock()
	b.waiting--
	b.mu.Unlock()
}

// release opens the gate (once shut: a test that fails before it
// opens the gate opens it as it ends).
func (b *gatedBroker) release() {
	b.mu.Lock()
	select {
	case <-b.open:
	default:
		close(b.open)
	}
	b.mu.Unlock()
}

func (b *gatedBroker) nwaiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

func (b *gatedBroker) Subscribe(channel string) error {
	b.gate(channel)
	return b.MemoryBroker.Subscribe(channel)
}

func (b *gatedBroker) History(channel string, o HistoryOptions) ([]*Publication, StreamPosition, error) {
	b.gate(channel)
	return b.MemoryBroker.History(channel, o)
}

func (b *gatedBroker) Publish(channel string, data []byte, o PublishOptions) (StreamPosition, error) {
	b.gate(channel)
	return b.MemoryBroker.Publish(channel, data, o)
}

// slowConfig is gwConfig with a namespace "slow" whose broker calls the
// gatedBroker holds.
func slowConfig() Config {
	cfg := gwConfig()
	o := cfg.Channel.WithoutNamespace
	o.AllowPublishForClient, o.AllowHistoryForClient = true, true
	cfg.Channel.Namespaces = append(cfg.Channel.Namespaces, Namespace{Name: "slow", ChannelOptions: o})
	return cfg
}

// TestBrokerWaitOffEventLoop: with one event loop, a client whose
// subscribe, publish and history wait for a broker that does not answer
// holds neither the other clients of the loop (their pings are answered,
// a live publication reaches them) nor its own order: its later commands,
// a ping among them, are answered after those, in the order sent, once
// the broker answers. Run on the event loop, the first subscribe held
// the loop, and every client of it, until the broker answered.
func TestBrokerWaitOffEventLoop(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{Loop: loop.Options{NumLoops: 1}})
	// The live channel shares the slow one's shard: the shard's lock is
	// not held while the broker creates the slow one.
	hotCh := "hot"
	for i := 0; n.chShard(hotCh) != n.chShard("slow:new"); i++ {
		hotCh = fmt.Sprint("hot", i)
	}
	hot := dialNode(t, n.addr, false)
	hot.connect(token(t, jwt.MapClaims{"sub": "h"}))
	if r := hot.subscribe(&protocol.SubscribeRequest{Channel: hotCh}); r.Error != nil {
		t.Fatalf("subscribe: %+v", r)
	}
	// The recovery of a slow channel, prepared before the gate shuts.
	off := n.publishAPI(t, "slow:r", `{"n":0}`)
	n.publishAPI(t, "slow:r", `{"n":1}`)
	epoch := n.apiCall(t, "history", map[string]any{"channel": "slow:r"})["result"].(map[string]any)["epoch"].(string)

	slow := dialNode(t, n.addr, false)
	slow.connect(token(t, jwt.MapClaims{"sub": "s"}))
	b.shut()
	slow.send(
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:new"}},
		&protocol.Command{Ping: &protocol.PingRequest{}},
		&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{"x":1}`)}},
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: hotCh}}, // needs no broker: still behind
		&protocol.Command{History: &protocol.HistoryRequest{Channel: "slow:r", Limit: -1}},
		&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:r", Recover: true, Epoch: epoch, Offset: off}},
	)
	waitUntil(t, "a broker call waiting", func() bool { return b.nwaiting() > 0 })

	other := dialNode(t, n.addr, false)
	other.connect(token(t, jwt.MapClaims{"sub": "o"}))
	if r := other.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
		t.Fatalf("ping: %+v", r)
	}
	n.publishAPI(t, hotCh, `{"live":1}`)
	if p := hot.pub(hotCh); string(p.Data) != `{"live":1}` {
		t.Fatalf("live publication: %s", p.Data)
	}
	if w := b.nwaiting(); w == 0 {
		t.Fatal("the broker call ended before the test opened the gate")
	}

	b.release()
	for id := uint32(2); id <= 7; id++ { // connect was 1
		r := slow.reply()
		if r.Push != nil {
			id--
			continue
		}
		if r.Id != id || r.Error != nil {
			t.Fatalf("reply %+v, want id %d without error", r, id)
		}
		switch id {
		case 7:
			s := r.Subscribe
			if !s.Recovered || len(s.Publications) != 1 || s.Publications[0].Offset != off+1 {
				t.Fatalf("recovery: %+v", s)
			}
		case 6:
			if len(r.History.Publications) != 2 {
				t.Fatalf("history: %+v", r.History)
			}
		}
	}
	waitUntil(t, "workers done", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return n.work.n == 0
	})
}

// TestBrokerWaitQueueBounded: a client that sends more commands than its
// queue holds while one waits for the broker is disconnected with 3013
// "too many requests"; the waiting command, once the broker answers,
// leaves nothing behind (no channel, no worker).
func TestBrokerWaitQueueBounded(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "s"}))
	b.shut()
	g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:q"}})
	waitUntil(t, "the subscribe waiting", func() bool { return b.nwaiting() == 1 })
	max := maxQueued(&n.cfg)
	for sent := 0; sent < max; sent += 50 {
		cmds := make([]*protocol.Command, min(50, max-sent))
		for i := range cmds {
			cmds[i] = &protocol.Command{Ping: &protocol.PingRequest{}}
		}
		g.send(cmds...)
	}
	g.expectClose(uint16(disconnectTooMany.Code))
	b.release()
	waitUntil(t, "nothing left", func() bool {
		n.work.mu.Lock()
		busy := n.work.n
		n.work.mu.Unlock()
		return busy == 0 && n.NumChannels() == 0 && n.Server().Conns() == 0
	})
}

// TestDrainWithQueuedCommands: Drain disconnects a client whose commands
// wait for the broker with 3001 like the others, and the node's Shutdown
// ends once the broker call it waited on returns: the command then
// leaves no channel and no worker behind.
func TestDrainWithQueuedCommands(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "s"}))
	b.shut()
	g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:d"}},
		&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:d", Data: []byte(`{}`)}})
	waitUntil(t, "the subscribe waiting", func() bool { return b.nwaiting() == 1 })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- n.Drain(ctx, 0)
	}()
	g.expectClose(uint16(disconnectShutdown.Code))
	select {
	case err := <-done:
		t.Fatalf("Drain returned (%v) while a command waited for the broker", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := n.NumChannels(); c != 0 {
		t.Errorf("%d channels left", c)
	}
	n.work.mu.Lock()
	defer n.work.mu.Unlock()
	if n.work.n != 0 || len(n.work.runq) != 0 {
		t.Errorf("workers %d, run list %d after Drain", n.work.n, len(n.work.runq))
	}
}

// TestRecoveryRacingPublications: subscribes that recover while the
// channel is published to get every publication once, in offset order:
// those up to their subscribe's offset in its reply, the later ones as
// pushes. Recovery reads history with no lock held, and reads again what
// arrived meanwhile.
func TestRecoveryRacingPublications(t *testing.T) {
	t.Run("loop", func(t *testing.T) { recoveryRacing(t, NodeOptions{}) })
	t.Run("queued", func(t *testing.T) { recoveryRacing(t, NodeOptions{Broker: newGatedBroker()}) })
}

func recoveryRacing(t *testing.T, o NodeOptions) {
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNodeWith(t, cfg, o)
	first := n.publishAPI(t, "chat:race", `{"n":0}`)
	epoch := n.apiCall(t, "history", map[string]any{"channel": "chat:race"})["result"].(map[string]any)["epoch"].(string)
	const clients, pubs = 8, 90 // history holds 100
	stop := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(stop)
		for i := range pubs {
			if _, err := n.publish(pubAPI, "chat:race", fmt.Appendf(nil, `{"n":%d}`, i+1), PublishOptions{}); err != nil {
				failed <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := dialNode(t, n.addr, i%2 == 1)
			g.connect(token(t, jwt.MapClaims{"sub": "u"}))
			r := g.subscribe(&protocol.SubscribeRequest{Channel: "chat:race", Recover: true, Epoch: epoch, Offset: first})
			s := r.Subscribe
			if s == nil || !s.Recovered {
				t.Errorf("client %d: %+v", i, r)
				return
			}
			next := first + 1
			for _, p := range s.Publications {
				if p.Offset != next {
					t.Errorf("client %d: recovered %d, want %d", i, p.Offset, next)
					return
				}
				next++
			}
			if s.Offset != next-1 {
				t.Errorf("client %d: offset %d after recovering up to %d", i, s.Offset, next-1)
			}
			<-stop
			for next <= first+pubs {
				if p := g.pub("chat:race"); p.Offset != next {
					t.Errorf("client %d: pushed %d, want %d", i, p.Offset, next)
					return
				}
				next++
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
}

// TestBrokerWaitWorkersBounded: clients whose commands all wait for a
// broker that does not answer hold at most maxWorkers goroutines; the
// others wait in the run list, and all are answered once it answers.
func TestBrokerWaitWorkersBounded(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	const clients = maxWorkers + 36
	gs := make([]*gwClient, clients)
	for i := range gs {
		gs[i] = dialNode(t, n.addr, false)
		gs[i].connect(token(t, jwt.MapClaims{"sub": "s"}))
	}
	before := runtime.NumGoroutine()
	b.shut()
	for i, g := range gs {
		g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: fmt.Sprint("slow:w", i), Data: []byte(`{}`)}})
	}
	waitUntil(t, "every publish running or waiting", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return b.nwaiting() == maxWorkers && n.work.n == maxWorkers && len(n.work.runq) == clients-maxWorkers
	})
	if d := runtime.NumGoroutine() - before; d > maxWorkers+8 {
		t.Errorf("%d goroutines more for %d clients waiting on the broker; want about %d", d, clients, maxWorkers)
	}
	b.release()
	for i, g := range gs {
		if r := g.reply(); r.Id != 2 || r.Publish == nil {
			t.Fatalf("client %d: %+v", i, r)
		}
	}
	waitUntil(t, "workers done", func() bool {
		n.work.mu.Lock()
		defer n.work.mu.Unlock()
		return n.work.n == 0 && n.work.runq == nil
	})
}

// BenchmarkClientPublish: one client publishes (history on) and waits
// for each reply: with a MemoryBroker the publish runs on the event loop,
// with any other broker (here the gated one, open) on a worker.
func BenchmarkClientPublish(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchClientPublish(b, NodeOptions{}) })
	b.Run("worker", func(b *testing.B) { benchClientPublish(b, NodeOptions{Broker: newGatedBroker()}) })
}

func benchClientPublish(b *testing.B, o NodeOptions) {
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNodeWith(b, cfg, o)
	g := dialNode(b, n.addr, false)
	g.connect(token(b, jwt.MapClaims{"sub": "b"}))
	data := []byte(`{"x":1}`)
	b.ResetTimer()
	for range b.N {
		if r := g.call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:b", Data: data}}); r.Publish == nil {
			b.Fatalf("publish: %+v", r)
		}
	}
}

// TestCmdqQueueBytesWithinBound: a client may queue commands up to
// maxQueuedBytes behind the running one: all are answered, in order.
func TestCmdqQueueBytesWithinBound(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	b.shut()
	g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{}`)}})
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
	data := []byte(`"` + string(bytes.Repeat([]byte("x"), n.cfg.Client.MaxCommandSize-200)) + `"`)
	k := maxQueuedBytes(&n.cfg)/(len(data)+64) - 1
	for range k {
		g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:q", Data: data}})
	}
	waitUntil(t, "every command queued", func() bool {
		queued := 0
		n.eachClient(func(c *session) {
			c.mu.Lock()
			if c.x != nil {
				queued = len(c.x.cmds)
			}
			c.mu.Unlock()
		})
		return queued == k+1
	})
	b.release()
	for i := range k + 1 {
		if r := g.reply(); r.Id != uint32(i+2) || r.Error != nil || r.Publish == nil {
			t.Fatalf("reply %d: %+v", i, r)
		}
	}
}

// queueBehindSlowPublish shuts b, sends a publish to slow:p (which then
// waits in b) followed by cmds, and waits until the publish waits, so that
// cmds are queued behind it.
func (g *gwClient) queueBehindSlowPublish(t *testing.T, b *gatedBroker, cmds ...*protocol.Command) {
	t.Helper()
	b.shut()
	g.send(append([]*protocol.Command{{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{}`)}}}, cmds...)...)
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
}

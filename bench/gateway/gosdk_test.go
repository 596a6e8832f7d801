package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
)

// The centrifuge-go tests: each scenario runs against every target, with
// the JSON and the Protobuf client.

const waitFor = 10 * time.Second

var formats = []string{"json", "protobuf"}

// forEachGoClient runs fn per target and per protocol format.
func forEachGoClient(t *testing.T, fn func(t *testing.T, tg *Target, format string)) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		for _, f := range formats {
			t.Run(f, func(t *testing.T) {
				t.Parallel()
				fn(t, tg, f)
			})
		}
	})
}

// netGate dials the server for a client and can cut its connections and
// refuse new ones until it is opened again, as a network outage would.
type netGate struct {
	mu    sync.Mutex
	down  bool
	local *net.TCPAddr // the address to dial from; nil: any
	conns []net.Conn
	dials atomic.Int32
}

func (g *netGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.dials.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return nil, errors.New("netGate: network down")
	}
	d := net.Dialer{}
	if g.local != nil {
		d.LocalAddr = g.local
	}
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		g.conns = append(g.conns, c)
	}
	return c, err
}

func (g *netGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = true
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *netGate) open() {
	g.mu.Lock()
	g.down = false
	g.mu.Unlock()
}

// goClient is a centrifuge-go client whose events go to channels.
type goClient struct {
	*centrifuge.Client
	connected    chan centrifuge.ConnectedEvent
	disconnected chan centrifuge.DisconnectedEvent
	connecting   chan centrifuge.ConnectingEvent
	serverSubs   chan centrifuge.ServerSubscribedEvent
	serverPubs   chan centrifuge.ServerPublicationEvent
	gate         *netGate
}

func newGoClient(t *testing.T, tg *Target, format string, cfg centrifuge.Config) *goClient {
	t.Helper()
	g := &goClient{
		connected:    make(chan centrifuge.ConnectedEvent, 16),
		disconnected: make(chan centrifuge.DisconnectedEvent, 16),
		connecting:   make(chan centrifuge.ConnectingEvent, 64),
		serverSubs:   make(chan centrifuge.ServerSubscribedEvent, 16),
		serverPubs:   make(chan centrifuge.ServerPublicationEvent, 256),
		gate:         &netGate{},
	}
	cfg.NetDialContext = g.gate.dial
	if cfg.MinReconnectDelay == 0 {
		cfg.MinReconnectDelay, cfg.MaxReconnectDelay = 50*time.Millisecond, 200*time.Millisecond
	}
	if format == "protobuf" {
		g.Client = centrifuge.NewProtobufClient(tg.WS, cfg)
	} else {
		g.Client = centrifuge.NewJsonClient(tg.WS, cfg)
	}
	g.OnConnected(func(e centrifuge.ConnectedEvent) { g.connected <- e })
	g.OnDisconnected(func(e centrifuge.DisconnectedEvent) { g.disconnected <- e })
	g.OnConnecting(func(e centrifuge.ConnectingEvent) {
		select {
		case g.connecting <- e:
		default:
		}
	})
	g.OnSubscribed(func(e centrifuge.ServerSubscribedEvent) { g.serverSubs <- e })
	g.OnPublication(func(e centrifuge.ServerPublicationEvent) { g.serverPubs <- e })
	t.Cleanup(g.Close)
	return g
}

func (g *goClient) connect(t *testing.T) centrifuge.ConnectedEvent {
	t.Helper()
	if err := g.Connect(); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	select {
	case e := <-g.connected:
		// Connect itself reports connecting (code 0, "connect called").
		for len(g.connecting) > 0 {
			<-g.connecting
		}
		return e
	case e := <-g.disconnected:
		t.Fatalf("disconnected (%d %q) instead of connected", e.Code, e.Reason)
	case <-time.After(waitFor):
		t.Fatalf("not connected after %v", waitFor)
	}
	return centrifuge.ConnectedEvent{}
}

// goSub is a subscription whose events go to channels.
type goSub struct {
	*centrifuge.Subscription
	subscribed chan centrifuge.SubscribedEvent
	pubs       chan received
	errs       chan error
}

func (g *goClient) subscribe(t *testing.T, channel string) (*goSub, centrifuge.SubscribedEvent) {
	t.Helper()
	sub, err := g.NewSubscription(channel)
	if err != nil {
		t.Fatal(err)
	}
	s := &goSub{
		Subscription: sub,
		subscribed:   make(chan centrifuge.SubscribedEvent, 16),
		pubs:         make(chan received, 256),
		errs:         make(chan error, 16),
	}
	sub.OnSubscribed(func(e centrifuge.SubscribedEvent) { s.subscribed <- e })
	sub.OnPublication(func(e centrifuge.PublicationEvent) { s.pubs <- decodePub(t, e.Offset, e.Data) })
	sub.OnError(func(e centrifuge.SubscriptionErrorEvent) {
		select {
		case s.errs <- e.Error:
		default:
		}
	})
	if err := sub.Subscribe(); err != nil {
		t.Fatalf("Subscribe %s: %v", channel, err)
	}
	return s, s.waitSubscribed(t)
}

func (s *goSub) waitSubscribed(t *testing.T) centrifuge.SubscribedEvent {
	t.Helper()
	select {
	case e := <-s.subscribed:
		return e
	case err := <-s.errs:
		t.Fatalf("subscription %s: %v", s.Channel, err)
	case <-time.After(waitFor):
		t.Fatalf("%s: not subscribed after %v", s.Channel, waitFor)
	}
	return centrifuge.SubscribedEvent{}
}

func decodePub(t *testing.T, offset uint64, data []byte) received {
	var d seqData
	if err := json.Unmarshal(data, &d); err != nil {
		t.Errorf("publication data %q: %v", data, err)
	}
	return received{Offset: offset, Seq: d.Seq}
}

// collect takes n publications from pubs, then checks for 200 ms that no
// other arrives.
func collect(t *testing.T, pubs <-chan received, n int) []received {
	t.Helper()
	var got []received
	timeout := time.After(waitFor)
	for len(got) < n {
		select {
		case p := <-pubs:
			got = append(got, p)
		case <-timeout:
			t.Fatalf("%d of %d publications after %v: %v", len(got), n, waitFor, got)
		}
	}
	select {
	case p := <-pubs:
		got = append(got, p)
		t.Errorf("publication beyond the %d expected: %+v", n, p)
	case <-time.After(200 * time.Millisecond):
	}
	return got
}

func validToken(tg *Target, user string, channels ...string) string {
	return tg.Token(Claims{Sub: user, Exp: time.Now().Add(time.Hour).Unix(), Channels: channels})
}

func TestGoConnect(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		c := newGoClient(t, tg, format, centrifuge.Config{Token: validToken(tg, "alice")})
		e := c.connect(t)
		if e.ClientID == "" {
			t.Errorf("connected without a client id: %+v", e)
		}
		if c.State() != centrifuge.StateConnected {
			t.Errorf("state %s; want connected", c.State())
		}
		t.Logf("client %s, server version %q", e.ClientID, e.Version)
	})
}

func TestGoBadSignature(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		tok := HS256("not-the-secret", Claims{Sub: "mallory", Exp: time.Now().Add(time.Hour).Unix()})
		c := newGoClient(t, tg, format, centrifuge.Config{Token: tok})
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-c.disconnected:
			if e.Code != 3500 {
				t.Errorf("disconnect %d %q; want 3500 (invalid token)", e.Code, e.Reason)
			}
			t.Logf("refused: %d %q", e.Code, e.Reason)
		case e := <-c.connected:
			t.Fatalf("connected with a token signed by another key: %+v", e)
		case <-time.After(waitFor):
			t.Fatalf("no disconnect after %v", waitFor)
		}
		// 3500 is terminal: the SDK must not try again.
		time.Sleep(300 * time.Millisecond)
		if n := c.gate.dials.Load(); n != 1 || c.State() != centrifuge.StateDisconnected {
			t.Errorf("after 3500: %d dials, state %s; want 1 dial, disconnected", n, c.State())
		}
	})
}

func TestGoPublishOrder(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		c := newGoClient(t, tg, format, centrifuge.Config{Token: validToken(tg, "bob")})
		c.connect(t)
		ch := channelName(NSFeed, "order")
		s, _ := c.subscribe(t, ch)
		const n = 50
		offsets, _ := publishSeq(t, tg, ch, 0, n)
		if offsets[0] != 1 {
			t.Errorf("first offset of a new channel %d; want 1", offsets[0])
		}
		checkSequence(t, "received", collect(t, s.pubs, n), 0, offsets)
	})
}

func TestGoRecover(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		c := newGoClient(t, tg, format, centrifuge.Config{Token: validToken(tg, "carol")})
		c.connect(t)
		ch := channelName(NSChat, "recover")
		s, first := c.subscribe(t, ch)
		if !first.Recoverable || first.StreamPosition == nil {
			t.Errorf("subscribe to a force_recovery namespace: recoverable %v, position %+v; want recoverable with a position",
				first.Recoverable, first.StreamPosition)
		}
		live, epoch := publishSeq(t, tg, ch, 0, 5)
		checkSequence(t, "before the outage", collect(t, s.pubs, 5), 0, live)

		c.gate.cut()
		select {
		case e := <-c.connecting:
			t.Logf("outage: connecting %d %q", e.Code, e.Reason)
		case <-time.After(waitFor):
			t.Fatal("the SDK did not notice the cut connection")
		}
		missed, _ := publishSeq(t, tg, ch, 5, 25)
		c.gate.open()

		e := s.waitSubscribed(t)
		if !e.WasRecovering || !e.Recovered {
			t.Errorf("resubscribe: wasRecovering %v, recovered %v; want both true", e.WasRecovering, e.Recovered)
		}
		if e.StreamPosition == nil || e.StreamPosition.Epoch != epoch {
			t.Errorf("resubscribe: position %+v; want epoch %q", e.StreamPosition, epoch)
		}
		checkSequence(t, "recovered", collect(t, s.pubs, 20), 5, missed)
		after, _ := publishSeq(t, tg, ch, 25, 26)
		checkSequence(t, "after recovery", collect(t, s.pubs, 1), 25, after)
		if live[4]+1 != missed[0] {
			t.Errorf("offsets %v then %v: not contiguous", live, missed)
		}
	})
}

func TestGoServerSideSubscriptions(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		chs := []string{channelName(NSFeed, "srv-a"), channelName(NSFeed, "srv-b")}
		c := newGoClient(t, tg, format, centrifuge.Config{Token: validToken(tg, "dave", chs...)})
		c.connect(t)
		var subscribed []string
		for range chs {
			select {
			case e := <-c.serverSubs:
				subscribed = append(subscribed, e.Channel)
			case <-time.After(waitFor):
				t.Fatalf("server-side subscriptions: %v of %v", subscribed, chs)
			}
		}
		slices.Sort(subscribed)
		if !slices.Equal(subscribed, chs) {
			t.Errorf("server-side subscriptions %v; want %v", subscribed, chs)
		}
		offA, _ := publishSeq(t, tg, chs[0], 0, 10)
		offB, _ := publishSeq(t, tg, chs[1], 100, 105)
		byChannel := map[string][]received{}
		timeout := time.After(waitFor)
		for n := 0; n < 15; n++ {
			select {
			case e := <-c.serverPubs:
				byChannel[e.Channel] = append(byChannel[e.Channel], decodePub(t, e.Offset, e.Data))
			case <-timeout:
				t.Fatalf("%d of 15 publications: %v", n, byChannel)
			}
		}
		checkSequence(t, chs[0], byChannel[chs[0]], 0, offA)
		checkSequence(t, chs[1], byChannel[chs[1]], 100, offB)
	})
}

func TestGoTokenRefresh(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		var refreshes atomic.Int32
		getToken := func(centrifuge.ConnectionTokenEvent) (string, error) {
			refreshes.Add(1)
			return tg.Token(Claims{Sub: "erin", Exp: time.Now().Add(time.Hour).Unix()}), nil
		}

		// An expired token is refused with 109; the SDK gets a new one.
		expired := tg.Token(Claims{Sub: "erin", Exp: time.Now().Add(-time.Minute).Unix()})
		c := newGoClient(t, tg, format, centrifuge.Config{Token: expired, GetToken: getToken})
		c.connect(t)
		if n := refreshes.Load(); n != 1 || c.gate.dials.Load() != 2 {
			t.Errorf("connect with an expired token: %d GetToken calls, %d dials; want 1 and 2", n, c.gate.dials.Load())
		}

		// A token that expires in 2 s is refreshed on the connection.
		refreshes.Store(0)
		short := tg.Token(Claims{Sub: "erin", Exp: time.Now().Add(2 * time.Second).Unix()})
		c2 := newGoClient(t, tg, format, centrifuge.Config{Token: short, GetToken: getToken})
		c2.connect(t)
		ch := channelName(NSFeed, "refresh")
		s, _ := c2.subscribe(t, ch)
		time.Sleep(3500 * time.Millisecond)
		if n := refreshes.Load(); n < 1 {
			t.Errorf("token expiring in 2 s: %d GetToken calls after 3.5 s; want at least 1", n)
		}
		select {
		case e := <-c2.disconnected:
			t.Errorf("disconnected %d %q although the token was refreshed", e.Code, e.Reason)
		case e := <-c2.connecting:
			t.Errorf("reconnecting (%d %q) although the token was refreshed", e.Code, e.Reason)
		default:
		}
		if n := c2.gate.dials.Load(); n != 1 {
			t.Errorf("%d dials; want 1 (refresh happens on the connection)", n)
		}
		offsets, _ := publishSeq(t, tg, ch, 0, 3)
		checkSequence(t, "after refresh", collect(t, s.pubs, 3), 0, offsets)
	})
}

func TestGoClientPublish(t *testing.T) {
	forEachGoClient(t, func(t *testing.T, tg *Target, format string) {
		c := newGoClient(t, tg, format, centrifuge.Config{Token: validToken(tg, "frank")})
		c.connect(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()

		allowed := channelName(NSChat, "pub")
		s, _ := c.subscribe(t, allowed)
		for i := range 3 {
			if _, err := s.Publish(ctx, seqJSON(i)); err != nil {
				t.Fatalf("publish to %s (allow_publish_for_client): %v", allowed, err)
			}
		}
		checkSequence(t, "own publications", collect(t, s.pubs, 3), 0, offsetRange(1, 3))

		refused := channelName(NSFeed, "pub")
		fs, _ := c.subscribe(t, refused)
		for _, publish := range []func() error{
			func() error { _, err := fs.Publish(ctx, seqJSON(0)); return err },
			func() error { _, err := c.Publish(ctx, refused, seqJSON(0)); return err },
		} {
			err := publish()
			var ce *centrifuge.Error
			if !errors.As(err, &ce) || ce.Code != 103 {
				t.Errorf("publish to %s (no client publish): %v; want error 103", refused, err)
			} else {
				t.Logf("refused: %d %q", ce.Code, ce.Message)
			}
		}
		if c.State() != centrifuge.StateConnected {
			t.Errorf("state %s after a refused publish; want connected", c.State())
		}
		collect(t, fs.pubs, 0)
	})
}

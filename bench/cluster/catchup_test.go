package cluster

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/golang-jwt/jwt/v5"
)

// relay forwards TCP connections from its own loopback address to a
// target, and can cut every connection it carries (and refuse new ones)
// until restored: a node's link to NATS going down while NATS itself and
// the other nodes stay up.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	delay  time.Duration // added before each chunk from the target
	// black: what either side sends is read and thrown away, and nothing
	// is closed (a link that went silent: a dead route, a NAT entry gone)
	black bool
	conns map[net.Conn]struct{}
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go r.serve()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.pipe(c)
	}
}

func (r *relay) pipe(c net.Conn) {
	r.mu.Lock()
	down := r.down
	r.mu.Unlock()
	if down {
		c.Close()
		return
	}
	u, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	r.conns[c], r.conns[u] = struct{}{}, struct{}{}
	r.mu.Unlock()
	go r.copy(u, c, false)
	r.copy(c, u, true)
}

// copy forwards from src to dst until either fails, delaying what comes
// from the target (fromTarget) by r.delay, and throwing bytes away while
// r.black is set.
func (r *relay) copy(dst, src net.Conn, fromTarget bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			d, black := r.delay, r.black
			r.mu.Unlock()
			if fromTarget {
				time.Sleep(d)
			}
			if !black {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// blackhole makes every connection, current and new, silent: bytes are
// thrown away, nothing is closed. restore ends it (closing the silent
// connections, whose streams lost bytes).
func (r *relay) blackhole() {
	r.mu.Lock()
	r.black = true
	r.mu.Unlock()
}

// slow delays everything the target sends by d from now on (0: none).
func (r *relay) slow(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// cut closes every relayed connection and refuses new ones.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// restore accepts and forwards connections again.
func (r *relay) restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.black {
		r.black = false
		for c := range r.conns {
			c.Close()
		}
		clear(r.conns)
	}
	r.down = false
}

// newClient connects a centrifuge-go client (JSON or Protobuf) as user to
// endpoints (comma-separated) with a recoverable subscription to ch, and
// records what it sees.
func newClient(t *testing.T, endpoints, user, ch string, protobuf bool) *client {
	t.Helper()
	cl := &client{user: user, discon: make(chan uint32, 16), unsub: make(chan uint32, 16)}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": cl.user}).SignedString([]byte(secret))
	cfg := centrifuge.Config{Token: tok, MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 300 * time.Millisecond}
	if protobuf {
		cl.c = centrifuge.NewProtobufClient(endpoints, cfg)
	} else {
		cl.c = centrifuge.NewJsonClient(endpoints, cfg)
	}
	cl.c.OnConnected(func(e centrifuge.ConnectedEvent) {
		cl.mu.Lock()
		cl.id = e.ClientID
		cl.mu.Unlock()
	})
	cl.c.OnDisconnected(func(e centrifuge.DisconnectedEvent) {
		select {
		case cl.discon <- e.Code:
		default:
		}
	})
	sub, err := cl.c.NewSubscription(ch, centrifuge.SubscriptionConfig{Recoverable: true})
	if err != nil {
		t.Fatal(err)
	}
	sub.OnUnsubscribed(func(e centrifuge.UnsubscribedEvent) {
		select {
		case cl.unsub <- e.Code:
		default:
		}
	})
	sub.OnSubscribed(func(e centrifuge.SubscribedEvent) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		cl.subs++
		if e.WasRecovering && e.Recovered {
			cl.recov++
		} else if e.WasRecovering {
			// Told its position is lost: the next publication follows
			// the position the subscribe gave, not the last one seen.
			cl.failed++
			if e.StreamPosition != nil {
				cl.from, cl.restart = e.StreamPosition.Offset, true
			}
		}
	})
	sub.OnPublication(func(e centrifuge.PublicationEvent) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.restart {
			cl.restart = false
			if e.Offset != cl.from+1 {
				cl.gaps++
			}
			cl.offs = append(cl.offs, e.Offset)
			return
		}
		if n := len(cl.offs); n > 0 {
			switch last := cl.offs[n-1]; {
			case e.Offset <= last:
				cl.dups++
				return
			case e.Offset > last+1:
				cl.gaps++
			}
		} else if e.Offset != 1 {
			cl.gaps++
		}
		cl.offs = append(cl.offs, e.Offset)
	})
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.c.Close)
	return cl
}

// TestCatchUpAfterNodeNATSDrop cuts one node's connection to NATS (a
// relay between it and the server) while another node keeps
// publishing, then restores it and publishes nothing more: the cut
// node's clients must end with every publication, in order, once each,
// or have been told that their position is lost (a failed recovery).
func TestCatchUpAfterNodeNATSDrop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	cut := startNode(t, dir, gateBin, cfgFile, "nats://"+r.addr(), "cut")
	pub := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "pub")

	const nClients = 6
	clients := make([]*client, nClients)
	for i := range clients {
		clients[i] = newClient(t, "ws://"+cut.ws+"/connection/websocket", fmt.Sprint("u", i), channel, i%2 == 1)
	}
	waitUntil(t, "clients subscribed", 10*time.Second, func() bool { return allSubscribed(clients) })

	publish := func(n *node, k int, from int) {
		for i := range k {
			if _, err := api(n, "publish", map[string]any{"channel": channel, "data": map[string]any{"i": from + i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(pub, 20, 0)
	waitUntil(t, "first 20 delivered", 10*time.Second, func() bool { return allSeen(clients, 20) })

	r.cut()
	waitUntil(t, "cut node not ready", 10*time.Second, func() bool { return !ready(cut) })
	publish(pub, 30, 20)
	r.restore()
	waitUntil(t, "cut node ready again", 20*time.Second, func() bool { return ready(cut) })
	waitUntil(t, "the 30 published while cut reach the cut node's clients (or a failed recovery)", 15*time.Second, func() bool {
		for _, cl := range clients {
			cl.mu.Lock()
			ok := len(cl.offs) >= 50 || cl.failed > 0
			cl.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	// A second cut, and this time publications after the restore too.
	r.cut()
	waitUntil(t, "cut node not ready", 10*time.Second, func() bool { return !ready(cut) })
	publish(pub, 10, 50)
	r.restore()
	waitUntil(t, "cut node ready again", 20*time.Second, func() bool { return ready(cut) })
	publish(pub, 5, 60)
	waitUntil(t, "all 65 delivered", 15*time.Second, func() bool { return allSeen(clients, 65) })
	for _, cl := range clients {
		cl.mu.Lock()
		if cl.dups != 0 || cl.gaps != 0 || cl.failed != 0 {
			t.Errorf("%s: duplicates %d, gaps %d, failed recoveries %d", cl.user, cl.dups, cl.gaps, cl.failed)
		}
		for i, o := range cl.offs {
			if o != uint64(i+1) {
				t.Errorf("%s: delivery %d has offset %d", cl.user, i, o)
				break
			}
		}
		cl.mu.Unlock()
	}
}

func allSubscribed(clients []*client) bool {
	for _, cl := range clients {
		cl.mu.Lock()
		s := cl.subs
		cl.mu.Unlock()
		if s == 0 {
			return false
		}
	}
	return true
}

func allSeen(clients []*client, n int) bool {
	for _, cl := range clients {
		if got, _ := cl.seen(); got < n {
			return false
		}
	}
	return true
}

// startNode starts one wsgate process named name on NATS at natsURL and
// waits until it is ready.
func startNode(t *testing.T, dir, gateBin, cfgFile, natsURL, name string) *node {
	t.Helper()
	n := &node{name: name, ws: "127.0.0.1:" + strconv.Itoa(freePort(t)), api: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	n.cmd = start(t, filepath.Join(dir, name+".log"), gateBin, "-config", cfgFile, "-addr", n.ws, "-api-addr", n.api,
		"-admin", "", "-nats", natsURL, "-name", name)
	waitUntil(t, name+" ready", 20*time.Second, func() bool { return ready(n) })
	return n
}

// positionLost waits until every client has been told its position is
// lost (a recovery that failed) and returns none that was not.
func positionLost(t *testing.T, clients []*client, what string) {
	t.Helper()
	waitUntil(t, what, 15*time.Second, func() bool {
		for _, cl := range clients {
			cl.mu.Lock()
			f := cl.failed
			cl.mu.Unlock()
			if f == 0 {
				return false
			}
		}
		return true
	})
}

// A node cut from NATS while more publications than the channel's
// history holds are made elsewhere cannot fill its clients' gap: they
// must be told (unsubscribed with "insufficient state", a recovery that
// fails), not handed the next publication after a silent gap.
func TestCatchUpBeyondHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	cut := startNode(t, dir, gateBin, cfgFile, "nats://"+r.addr(), "cut")
	pub := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "pub")
	const ch = "small:trim"
	clients := []*client{
		newClient(t, "ws://"+cut.ws+"/connection/websocket", "u0", ch, false),
		newClient(t, "ws://"+cut.ws+"/connection/websocket", "u1", ch, true),
	}
	waitUntil(t, "clients subscribed", 10*time.Second, func() bool { return allSubscribed(clients) })
	for i := range 3 {
		if _, err := api(pub, "publish", map[string]any{"channel": ch, "data": i}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "first 3 delivered", 10*time.Second, func() bool { return allSeen(clients, 3) })
	r.cut()
	waitUntil(t, "cut node not ready", 10*time.Second, func() bool { return !ready(cut) })
	for i := range 10 { // offsets 4..13; history keeps 9..13
		if _, err := api(pub, "publish", map[string]any{"channel": ch, "data": i}); err != nil {
			t.Fatal(err)
		}
	}
	r.restore()
	waitUntil(t, "cut node ready again", 20*time.Second, func() bool { return ready(cut) })
	positionLost(t, clients, "the cut node's clients told their position is lost")
	// Resubscribed, they get what is published from then on.
	for i := range 3 { // offsets 14..16
		if _, err := api(pub, "publish", map[string]any{"channel": ch, "data": i}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "publications after the loss delivered", 10*time.Second, func() bool {
		for _, cl := range clients {
			cl.mu.Lock()
			n := len(cl.offs)
			last := uint64(0)
			if n > 0 {
				last = cl.offs[n-1]
			}
			cl.mu.Unlock()
			if last != 16 {
				return false
			}
		}
		return true
	})
	for _, cl := range clients {
		cl.mu.Lock()
		if cl.dups != 0 || cl.gaps != 0 {
			t.Errorf("%s: duplicates %d, gaps %d (offsets %v)", cl.user, cl.dups, cl.gaps, cl.offs)
		}
		cl.mu.Unlock()
	}
}

// NATS restarted without its storage: every channel's stream starts
// again with a new epoch. The clients subscribed on a node must be told
// their position is lost (Centrifugo's "insufficient state": a
// resubscribe whose recovery fails), not handed the new stream's offsets
// as if they followed the old ones.
func TestEpochChangeSignalled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	port := s.Addr().(*net.TCPAddr).Port
	sub := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "sub")
	pub := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "pub")
	clients := []*client{
		newClient(t, "ws://"+sub.ws+"/connection/websocket", "u0", channel, false),
		newClient(t, "ws://"+sub.ws+"/connection/websocket", "u1", channel, true),
	}
	waitUntil(t, "clients subscribed", 10*time.Second, func() bool { return allSubscribed(clients) })
	for i := range 5 {
		if _, err := api(pub, "publish", map[string]any{"channel": channel, "data": i}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "first 5 delivered", 10*time.Second, func() bool { return allSeen(clients, 5) })
	s.Shutdown()
	s.WaitForShutdown()
	s = startNATS(t, filepath.Join(dir, "js2"), port)
	defer s.Shutdown()
	waitUntil(t, "nodes ready again", 20*time.Second, func() bool { return ready(sub) && ready(pub) })
	for i := range 3 {
		if _, err := api(pub, "publish", map[string]any{"channel": channel, "data": i}); err != nil {
			t.Fatal(err)
		}
	}
	positionLost(t, clients, "clients told their position is lost after the epoch changed")
	for _, cl := range clients {
		cl.mu.Lock()
		if cl.dups != 0 {
			t.Errorf("%s: handed offsets of the new epoch as if they followed the old ones: %v", cl.user, cl.offs)
		}
		cl.mu.Unlock()
	}
}

// A server-side subscriber (channels of its connection token) whose
// position is lost cannot subscribe again by itself: as Centrifugo, it is
// disconnected with 3010 "insufficient state", reconnects, and its
// server-side subscription's recovery fails (recovered: false); then it
// gets what is published next.
func TestServerSideSubscriberPositionLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	cut := startNode(t, dir, gateBin, cfgFile, "nats://"+r.addr(), "cut")
	pub := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "pub")
	const ch = "small:server-side"
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ss", "channels": []string{ch}}).SignedString([]byte(secret))
	c := centrifuge.NewJsonClient("ws://"+cut.ws+"/connection/websocket",
		centrifuge.Config{Token: tok, MinReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: 300 * time.Millisecond})
	type subscribed struct{ recovering, recovered bool }
	subs := make(chan subscribed, 16)
	pubs := make(chan uint64, 64)
	c.OnSubscribed(func(e centrifuge.ServerSubscribedEvent) { subs <- subscribed{e.WasRecovering, e.Recovered} })
	c.OnPublication(func(e centrifuge.ServerPublicationEvent) { pubs <- e.Offset })
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-subs:
	case <-time.After(10 * time.Second):
		t.Fatal("no server-side subscription")
	}
	publish := func(k int) {
		for i := range k {
			if _, err := api(pub, "publish", map[string]any{"channel": ch, "data": i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(2)
	for range 2 {
		<-pubs
	}
	r.cut()
	waitUntil(t, "cut node not ready", 10*time.Second, func() bool { return !ready(cut) })
	publish(10) // offsets 3..12; history keeps 8..12
	r.restore()
	waitUntil(t, "cut node ready again", 20*time.Second, func() bool { return ready(cut) })
	select {
	case e := <-subs:
		if !e.recovering || e.recovered {
			t.Fatalf("subscribed again with %+v; want a failed recovery", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the server-side subscriber was never told its position is lost")
	}
	for len(pubs) > 0 {
		if o := <-pubs; o > 2 {
			t.Fatalf("offset %d delivered after 2, before the loss was told", o)
		}
	}
	publish(1)
	select {
	case o := <-pubs:
		if o != 13 {
			t.Fatalf("offset %d after the loss; want 13", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered after the loss")
	}
}

package wsgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/centrifugal/protocol"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/upgrade"
)

// Version is the server version sent in connect replies.
const Version = "wsgate-0.1"

// WebSocketPath is the path clients upgrade on, as Centrifugo's.
const WebSocketPath = "/connection/websocket"

// ProtobufSubprotocol selects the Protobuf encoding of the protocol.
const ProtobufSubprotocol = "centrifuge-protobuf"

// NodeOptions configures a Node beside its Config.
type NodeOptions struct {
	// Loop are the engine's options. Authorize, Protocols and
	// MaxMessageSize are set by the node; AllowedOrigins, TrustedProxies
	// and MaxConns come from the Config when empty.
	Loop loop.Options
	// Broker carries publications and history; nil: a MemoryBroker.
	Broker Broker
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// Name is the node's name in /api/info; empty: its random id.
	Name string
}

// Node is one gateway process: the WebSocket server speaking the
// Centrifugo client protocol (v2), its channels, and the operations of
// the server API. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	srv    *loop.Server
	broker Broker
	log    *slog.Logger
	conns  *verifier // connection tokens
	subs   *verifier // subscription tokens
	id     string
	name   string
	start  time.Time
	seed   maphash.Seed

	clients  [64]clientShard
	channels [64]channelShard
	seq      atomic.Uint64
	nconn    atomic.Int64 // clients that completed connect
	stats    nodeStats
	draining atomic.Bool // Drain has begun: Ready fails
	work     workers     // run the commands that wait for the broker
	inline   bool        // the broker is a MemoryBroker: no command waits for it

	// lostQ holds the channels whose subscribers are to be told that
	// their position is lost; losing is set while tellLost runs.
	lostMu sync.Mutex
	lostQ  []*channel
	losing bool

	started  atomic.Bool
	stop     chan struct{} // closed once, by Shutdown: the sweep ends
	stopOnce sync.Once
	done     chan struct{}
}

type clientShard struct {
	mu          sync.Mutex
	clients     []*session
	disconnects map[uint16]int64 // closed connections by close code
}

type channelShard struct {
	mu sync.Mutex
	m  map[string]*channel
}

// channel is a channel with local subscribers. Its mutex orders
// subscribes (position check, engine subscription, reply) against
// publications (offset check, engine publish), which gives recovery
// without gaps or duplicates. No broker call is made under it (a gap
// fill releases it while it reads), nor under its shard's mutex.
type channel struct {
	name string
	refs int // guarded by the shard's mutex
	opts *ChannelOptions
	// ready is closed once the channel is created (broker subscription
	// and stream position); err, set before, is why it was not.
	ready chan struct{}
	err   error

	mu       sync.Mutex
	creating bool   // ready not yet closed: nobody has joined
	n        [2]int // subscribers per format
	init     bool
	top      uint64 // offset of the last publication handed to the engine topics (at creation: the stream's)
	epoch    string
	// lost is set while the channel's subscribers on this node are being
	// told that their position is lost (see lose): nothing is fanned out
	// to them and nobody joins until they all are.
	lost bool
	// catching counts the recovering subscribes reading history; while
	// it is not 0, recent holds the publications delivered (at most
	// RecoveryMaxPublicationLimit, the newest), so that they need not
	// read again what arrived during their read (subscribe).
	catching int
	recent   []*Publication
}

// NewNode checks the configuration and returns a node that is not yet
// listening.
func NewNode(cfg Config, o NodeOptions) (*Node, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, broker: o.Broker, log: o.Logger, start: time.Now(), seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.broker == nil {
		n.broker = NewMemoryBroker(cfg.Channel.MaxHistoryBytes)
	}
	_, n.inline = n.broker.(*MemoryBroker)
	t := cfg.Client.Token
	if n.conns, err = newVerifier("client.token", t.HMACSecretKey, t.RSAPublicKey, t.ECDSAPublicKey, t.Audience, t.Issuer); err != nil {
		return nil, err
	}
	n.subs = n.conns
	if st := cfg.Client.SubscriptionToken; st.Enabled {
		if n.subs, err = newVerifier("client.subscription_token", st.HMACSecretKey, st.RSAPublicKey, st.ECDSAPublicKey, st.Audience, st.Issuer); err != nil {
			return nil, err
		}
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	n.id = hex.EncodeToString(rb[:])
	if n.name = o.Name; n.name == "" {
		n.name = n.id
	}

	lo := o.Loop
	lo.Logger = n.log
	lo.Protocols = []string{ProtobufSubprotocol}
	lo.MaxMessageSize = int64(cfg.Client.MaxCommandSize)
	if len(lo.AllowedOrigins) == 0 {
		lo.AllowedOrigins = cfg.Client.AllowedOrigins
	}
	if len(lo.TrustedProxies) == 0 {
		lo.TrustedProxies, _ = ParseTrustedProxies(cfg.Client.TrustedProxies) // checked by normalize
	}
	if lo.MaxConns == 0 {
		lo.MaxConns = cfg.Client.ConnectionLimit
	}
	lo.Authorize = func(r *upgrade.Request) (any, error) {
		if string(r.Path()) != WebSocketPath {
			return nil, upgrade.RejectError{Status: 404, Reason: "not found"}
		}
		return nil, nil
	}
	if cfg.Client.PingInterval > 0 {
		// The protocol's pings and the pong check replace the engine's.
		lo.PingInterval = -1
		lo.IdleTimeout = 2 * time.Duration(cfg.Client.PingInterval+cfg.Client.PongTimeout)
	}
	if n.srv, err = loop.NewServer((*engine)(n), lo); err != nil {
		return nil, err
	}
	if err := n.broker.Run(n); err != nil {
		return nil, err
	}
	if err := n.startCluster(); err != nil {
		return nil, err
	}
	return n, nil
}

// Server returns the node's engine (for its counters).
func (n *Node) Server() *loop.Server { return n.srv }

// Start listens for WebSocket clients on addr and starts the node's
// periodic sweep (pings, pong check, connect timeout, token expiry).
func (n *Node) Start(addr string) error {
	if err := n.srv.Start(addr); err != nil {
		return err
	}
	n.started.Store(true)
	go n.sweep()
	return nil
}

// Shutdown disconnects every client with 3001 "shutdown", stops the
// engine and waits for the commands running on the broker to end (until
// ctx ends).
func (n *Node) Shutdown(ctx context.Context) error {
	// Once: Drain and Shutdown may run at the same time. A second caller
	// waits here until the sweep has ended too.
	n.stopOnce.Do(func() {
		close(n.stop)
		if n.started.Load() {
			<-n.done
		}
	})
	var clients []*session
	n.eachClient(func(c *session) { clients = append(clients, c) })
	for _, c := range clients {
		c.mu.Lock()
		if c.state.Load() != stateClosed {
			c.disconnect(disconnectShutdown)
		}
		c.mu.Unlock()
	}
	err := n.srv.Shutdown(ctx)
	// Commands queued for the broker end with their clients: what runs
	// still is a broker call already made.
	if werr := n.waitWorkers(ctx); err == nil {
		err = werr
	}
	return err
}

// ErrDraining is Ready's answer once Drain has begun.
var ErrDraining = errors.New("wsgate: draining")

// Ready reports whether the node takes new clients: ErrDraining once Drain
// has begun, else nil. It is meant for a readiness endpoint, so that a
// load balancer sends no new client to a node that is going away.
func (n *Node) Ready() error {
	if n.draining.Load() {
		return ErrDraining
	}
	return nil
}

// drainTick is how often Drain disconnects the clients that are due.
const drainTick = 10 * time.Millisecond

// Drain shuts the node down gently, for a restart behind a load balancer.
// Ready fails from the start and new connections are refused
// (loop.Server.StopAccepting); then the clients are disconnected with 3001
// "shutdown", the protocol's code that tells a client to reconnect, spread
// evenly over period: client i of n at i*period/n, so that they reconnect
// to the other nodes at a steady rate, not all at once. Each client gets
// what was queued for it before its close frame (Conn.Close queues the
// frame behind it). Drain ends with Shutdown, which waits for the closing
// handshakes until ctx ends. If ctx ends during the spread, the clients
// left are disconnected at once. A client's commands still queued for the
// broker when it is disconnected are dropped unanswered and never run; a
// command whose broker call is under way ends with that call, unanswered
// (the call itself, such as a publish, may still take effect). Shutdown
// waits for those calls.
func (n *Node) Drain(ctx context.Context, period time.Duration) error {
	n.draining.Store(true)
	n.srv.StopAccepting()
	var clients []*session
	n.eachClient(func(c *session) { clients = append(clients, c) })
	start := time.Now()
	t := time.NewTicker(drainTick)
	defer t.Stop()
	for done := 0; done < len(clients); {
		due := len(clients)
		if el := time.Since(start); el < period {
			due = min(due, int(int64(el)*int64(len(clients))/int64(period))+1)
		}
		for ; done < due; done++ {
			c := clients[done]
			c.mu.Lock()
			if c.state.Load() != stateClosed {
				c.disconnect(disconnectShutdown)
			}
			c.mu.Unlock()
		}
		if done == len(clients) {
			break
		}
		select {
		case <-ctx.Done():
			period = 0
		case <-t.C:
		}
	}
	return n.Shutdown(ctx)
}

// Wait blocks until the engine has stopped.
func (n *Node) Wait() error { return n.srv.Wait() }

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

func (n *Node) clock() uint32 { return uint32(time.Since(n.start) / time.Second) }

// engine is the node as the engine's loop.Handler; its methods run on
// the connection's event loop.
type engine Node

// OnOpen implements loop.Handler.
func (e *engine) OnOpen(conn *loop.Conn) {
	n := (*Node)(e)
	c := &session{conn: conn, seq: n.seq.Add(1), opened: n.clock()}
	c.seen.Store(c.opened)
	if conn.Subprotocol() == ProtobufSubprotocol {
		c.proto = protoProtobuf
	}
	conn.SetValue(c)
	sh := &n.clients[c.seq%uint64(len(n.clients))]
	sh.mu.Lock()
	c.idx = int32(len(sh.clients))
	sh.clients = append(sh.clients, c)
	sh.mu.Unlock()
	if n.debug() {
		n.log.Debug("connection open", "client", c.id(n), "remote", conn.RemoteAddr().String())
	}
}

// debug reports whether debug logs are written: connection events build
// their attributes only then.
func (n *Node) debug() bool { return n.log.Enabled(context.Background(), slog.LevelDebug) }

// OnClose implements loop.Handler.
func (e *engine) OnClose(conn *loop.Conn, err error) {
	n := (*Node)(e)
	c, _ := conn.Value().(*session)
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.state.Load() == stateConnected {
		n.nconn.Add(-1)
	}
	c.state.Store(stateClosed)
	for i := range c.nsubs() {
		n.leave(c, c.subAt(i).ch, leaveClosed)
	}
	c.sub0, c.x = sub{}, nil
	c.mu.Unlock()
	code := closeCode(err)
	if n.debug() {
		n.log.Debug("connection closed", "client", c.id(n), "user", c.user,
			"remote", conn.RemoteAddr().String(), "code", code, "err", err)
	}
	sh := &n.clients[c.seq%uint64(len(n.clients))]
	sh.mu.Lock()
	if sh.disconnects == nil {
		sh.disconnects = map[uint16]int64{}
	}
	sh.disconnects[disconnectKey(err)]++
	last := sh.clients[len(sh.clients)-1]
	sh.clients[c.idx] = last
	last.idx = c.idx
	sh.clients[len(sh.clients)-1] = nil
	sh.clients = sh.clients[:len(sh.clients)-1]
	sh.mu.Unlock()
}

// OnMessage implements loop.Handler.
func (e *engine) OnMessage(conn *loop.Conn, op codec.OpCode, p []byte) {
	n := (*Node)(e)
	c, _ := conn.Value().(*session)
	if c == nil {
		return
	}
	c.seen.Store(n.clock())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() == stateClosed || c.closing {
		return
	}
	if c.queued() && c.x.cmds[len(c.x.cmds)-1] == badRequestCmd {
		return // a protocol error waits behind the queued commands
	}
	if (c.proto == protoJSON) != (op == codec.OpText) {
		n.badRequest(c)
		return
	}
	// The whole message is decoded first: a batch over MaxBatchSize is
	// refused before any of its commands runs. Commands with the same id
	// all run, as in Centrifugo.
	cmds, last, err := n.decode(c.proto, p)
	if len(cmds) > n.cfg.Client.MaxBatchSize {
		n.badRequest(c)
		return
	}
	// Queued commands outlive p, which is valid only until OnMessage
	// returns: both decoders copy every string and byte slice out of it
	// (TestDecodeCopies).
	for _, cmd := range cmds {
		if s := cmd.Subscribe; s != nil {
			if o := n.cfg.options(s.Channel); o != nil && o.ConflationTag != "" {
				// Event-loop only, so here, also for a subscribe that
				// is queued: the connection's slow policy becomes
				// conflation by the channel's tag.
				c.conn.SetSlowPolicy(loop.SlowConflate)
			}
		}
		if !n.run(c, cmd) {
			return
		}
	}
	if !isEOF(err) || !last {
		n.badRequest(c)
	}
}

// decode decodes the commands of message p, at most one more than
// MaxBatchSize; last reports whether the decoder's last result carried a
// command, and err is its error (io.EOF after the last command).
func (n *Node) decode(proto uint8, p []byte) (cmds []*protocol.Command, last bool, err error) {
	var dec protocol.CommandDecoder
	if proto == protoJSON {
		dec = protocol.NewJSONCommandDecoder(p)
	} else {
		dec = protocol.NewProtobufCommandDecoder(p)
	}
	for {
		var cmd *protocol.Command
		cmd, err = dec.Decode()
		if cmd == nil && err == nil {
			err = errors.New("empty command")
		}
		if cmd != nil {
			cmds = append(cmds, cmd)
			if len(cmds) > n.cfg.Client.MaxBatchSize {
				return cmds, true, err
			}
		}
		if err != nil {
			return cmds, cmd != nil, err
		}
	}
}

// eachClient calls f for every client (under its shard's lock: f must
// not block).
func (n *Node) eachClient(f func(c *session)) {
	for i := range n.clients {
		sh := &n.clients[i]
		sh.mu.Lock()
		for _, c := range sh.clients {
			f(c)
		}
		sh.mu.Unlock()
	}
}

// clientsOf returns the connected clients of user (all connected clients
// when all is set), or the one with id client.
func (n *Node) clientsOf(user, clientID string, all bool) []*session {
	var out []*session
	n.eachClient(func(c *session) {
		if c.state.Load() != stateConnected {
			return
		}
		if (all || c.user == user) && (clientID == "" || c.id(n) == clientID) {
			out = append(out, c)
		}
	})
	return out
}

// sweep runs once a second: protocol pings, the pong check, the connect
// timeout and token expiry. It is the node's only timer: clients carry
// timestamps, not timers. Pings are spread over the ping interval by
// client number (each second about 1/interval of the clients), so that a
// node with many clients writes no burst of pings.
func (n *Node) sweep() {
	defer close(n.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	// A negative interval turns pings and the pong check off (0 here):
	// converted as is, it would wrap to a huge interval whose sum with
	// pong wraps again, to a few seconds.
	ping := uint32(max(0, time.Duration(n.cfg.Client.PingInterval)/time.Second))
	pong := uint32(time.Duration(n.cfg.Client.PongTimeout) / time.Second)
	stale := uint32(time.Duration(n.cfg.Client.StaleCloseDelay) / time.Second)
	expDelay := int64(time.Duration(n.cfg.Client.ExpiredCloseDelay) / time.Second)
	subDelay := int64(time.Duration(n.cfg.Client.ExpiredSubCloseDelay) / time.Second)
	prev := n.clock()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		now := n.clock()
		unix := time.Now().Unix()
		var closing []*session
		var closeWith []disconnect
		n.eachClient(func(c *session) {
			switch c.state.Load() {
			case stateNew:
				if now-c.opened >= stale {
					closing, closeWith = append(closing, c), append(closeWith, disconnectStale)
				}
			case stateConnected:
				if exp := int64(c.exp.Load()); exp != 0 && unix >= exp+expDelay {
					closing, closeWith = append(closing, c), append(closeWith, disconnectExpired)
					return
				}
				if se := int64(c.subExp.Load()); se != 0 && unix >= se+subDelay {
					closing, closeWith = append(closing, c), append(closeWith, disconnectSubExpired)
					return
				}
				if ping > 0 && now-c.seen.Load() >= ping+pong {
					closing, closeWith = append(closing, c), append(closeWith, disconnectNoPong)
					return
				}
				// A client is pinged when a multiple of the interval
				// falls in (prev, now], shifted by its number.
				if ping > 0 && (uint64(now)+c.seq)/uint64(ping) != (uint64(prev)+c.seq)/uint64(ping) {
					c.writeRaw(pingBytes[c.proto])
				}
			}
		})
		prev = now
		for i, c := range closing {
			c.mu.Lock()
			if c.state.Load() != stateClosed {
				c.disconnect(closeWith[i])
			}
			c.mu.Unlock()
		}
	}
}

// pingBytes is the server ping per format: an empty reply.
var pingBytes = [2][]byte{protoJSON: []byte("{}"), protoProtobuf: {0}}

// Channels.

func (n *Node) chShard(name string) *channelShard {
	return &n.channels[maphash.String(n.seed, name)%uint64(len(n.channels))]
}

// errWait is returned by the steps of a command run on the event loop
// that would call the broker: the command is queued for a worker instead
// (see cmdqueue.go).
var errWait = errors.New("wsgate: command waits for the broker")

// acquire returns the channel name, creating it (and subscribing the node
// to it at the broker) for its first user. The broker is called with no
// lock held; others acquiring the channel meanwhile wait for it. Without
// wait, a channel that is not ready is errWait.
func (n *Node) acquire(name string, opts *ChannelOptions, wait bool) (*channel, error) {
	sh := n.chShard(name)
	sh.mu.Lock()
	ch := sh.m[name]
	if ch != nil {
		select {
		case <-ch.ready:
			ch.refs++
			sh.mu.Unlock()
			return ch, nil
		default:
		}
		if !wait {
			sh.mu.Unlock()
			return nil, errWait
		}
		ch.refs++
		sh.mu.Unlock()
		<-ch.ready
		if ch.err != nil {
			return nil, ch.err // its creator took it out of the map
		}
		return ch, nil
	}
	if !wait {
		sh.mu.Unlock()
		return nil, errWait
	}
	ch = &channel{name: strings.Clone(name), opts: opts, refs: 1, ready: make(chan struct{}), creating: true}
	if sh.m == nil {
		sh.m = map[string]*channel{}
	}
	sh.m[ch.name] = ch
	sh.mu.Unlock()
	if err := n.create(ch); err != nil {
		ch.err = err
		sh.mu.Lock()
		delete(sh.m, ch.name)
		sh.mu.Unlock()
		close(ch.ready)
		return nil, err
	}
	close(ch.ready)
	return ch, nil
}

// create subscribes the node to ch at the broker and reads its stream
// position, before anyone joins: from then on the channel's offset is
// the last publication handed to the engine topic, and no subscribe is
// answered with a later one. (Read at a positioned subscribe instead, it
// could include a publication appended to history but not yet delivered
// here, which was then dropped as already delivered, and the subscribers
// already there lost it.) A publication that arrives meanwhile is
// delivered to nobody, but its position counts (HandlePublication): one
// stored after the read would otherwise be taken as never delivered.
func (n *Node) create(ch *channel) error {
	if err := n.broker.Subscribe(ch.name); err != nil {
		return err
	}
	var sp StreamPosition
	if ch.opts.history() {
		var err error
		if _, sp, err = n.broker.History(ch.name, HistoryOptions{}); err != nil {
			_ = n.broker.Unsubscribe(ch.name)
			return err
		}
	}
	ch.mu.Lock()
	if ch.opts.history() && !(ch.init && ch.epoch == sp.Epoch && ch.top > sp.Offset) {
		ch.init, ch.top, ch.epoch = true, sp.Offset, sp.Epoch
	}
	ch.creating = false
	ch.mu.Unlock()
	return nil
}

func (n *Node) release(ch *channel) {
	sh := n.chShard(ch.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch.refs--
	if ch.refs == 0 {
		delete(sh.m, ch.name)
		_ = n.broker.Unsubscribe(ch.name)
	}
}

func (n *Node) lookup(name string) *channel {
	sh := n.chShard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[name]
}

// topic is the engine topic of channel name for a protocol format.
func topic(format uint8, name string) string {
	if format == protoJSON {
		return "j" + name
	}
	return "p" + name
}

// HandlePublication implements BrokerHandler: the publication is encoded
// once per format that has subscribers, prepared once, and published to
// the engine topic; publications at or below the delivered offset are
// dropped.
func (n *Node) HandlePublication(name string, pub *Publication, sp StreamPosition) {
	ch := n.lookup(name)
	if ch == nil {
		return
	}
	n.stats.random().published[pubBroker].Add(1)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.creating {
		if pub.Offset != 0 && (!ch.init || ch.epoch != sp.Epoch || pub.Offset > ch.top) {
			ch.init, ch.top, ch.epoch = true, pub.Offset, sp.Epoch
		}
		return
	}
	if pub.Offset != 0 {
		same := ch.init && sp.Epoch == ch.epoch
		if same && pub.Offset <= ch.top {
			return
		}
		// Publications were lost on the way (a broker between nodes may
		// drop some): they are delivered from history first. When history
		// no longer holds them, or the stream's epoch changed, the
		// subscribers' position is lost and they are told so.
		if same && pub.Offset > ch.top+1 {
			// ch.mu is released while history is read: another
			// publication may have been handled meanwhile.
			n.fill(ch, pub.Offset-1)
			if ch.epoch != sp.Epoch || pub.Offset <= ch.top {
				// A publication of a new epoch moved the stream on
				// (pub, of the old one, is dropped), or pub was
				// delivered already.
				return
			}
		}
		if ch.init && !same {
			ch.recent = nil // of the old epoch
		}
		if (ch.init && !same) || pub.Offset > ch.top+1 {
			n.lose(ch)
		}
		ch.init, ch.top, ch.epoch = true, pub.Offset, sp.Epoch
		n.record(ch, pub)
	}
	if !ch.lost {
		n.fanOut(ch, pub)
	}
}

// insufficientState is Centrifugo's unsubscribe push for a subscriber
// whose position in the stream is lost; its code (2500 and above) makes
// the SDKs subscribe again, recovering from their position.
var insufficientState = &protocol.Unsubscribe{Code: 2500, Reason: "insufficient state"}

// lose tells ch's subscribers on this node that publications they should
// have had are lost: each is unsubscribed with insufficientState, so that
// its SDK subscribes again with recovery, which then fails (recovered:
// false) and the application learns it. A server-side subscriber, which
// cannot subscribe again by itself, is disconnected with 3010
// "insufficient state" instead: it reconnects, recovering its server-side
// subscriptions. Until they all are, nothing is fanned out on ch and
// subscribes are refused with a temporary error: no subscriber sees a
// later publication after the gap, which would move its position past
// the loss. ch.mu held; the telling runs on its own goroutine (tellLost),
// as it takes the sessions' locks.
func (n *Node) lose(ch *channel) {
	if ch.lost {
		return
	}
	n.log.Warn("subscribers' position lost", "channel", ch.name, "after", ch.top, "epoch", ch.epoch)
	ch.lost = true
	n.lostMu.Lock()
	n.lostQ = append(n.lostQ, ch)
	start := !n.losing
	n.losing = true
	n.lostMu.Unlock()
	if start {
		go n.tellLost()
	}
}

// tellLost tells the subscribers of the channels queued by lose, then
// lets the channels take subscribes again. It walks the node's clients
// once for all the channels queued so far, not once per channel: many
// channels lose their position at once (a new epoch for all, a node cut
// off for longer than history holds).
func (n *Node) tellLost() {
	var names []string
	for {
		n.lostMu.Lock()
		q := n.lostQ
		n.lostQ = nil
		if len(q) == 0 {
			n.losing = false
			n.lostMu.Unlock()
			return
		}
		n.lostMu.Unlock()
		lost := make(map[*channel]struct{}, len(q))
		for _, ch := range q {
			lost[ch] = struct{}{}
		}
		var cs []*session
		n.eachClient(func(c *session) {
			if c.state.Load() == stateConnected {
				cs = append(cs, c)
			}
		})
		for _, c := range cs {
			c.mu.Lock()
			if c.state.Load() == stateConnected {
				// The subscriptions to the very channels lost: one made
				// since to a new channel of the same name is kept.
				names = names[:0]
				server := false
				for i := range c.nsubs() {
					s := c.subAt(i)
					if _, ok := lost[s.ch]; ok {
						names = append(names, s.ch.name)
						server = server || s.server
					}
				}
				if server {
					c.disconnect(disconnectInsufficient)
				} else {
					for _, name := range names {
						n.unsubscribe(c, name, leaveQueued)
						c.write(&protocol.Reply{Push: &protocol.Push{Channel: name, Unsubscribe: insufficientState}})
					}
				}
			}
			c.mu.Unlock()
		}
		for _, ch := range q {
			ch.mu.Lock()
			ch.lost = false
			ch.mu.Unlock()
		}
	}
}

// errPositionLost refuses a subscribe while a channel's subscribers are
// told that their position is lost (answered as a temporary error: the
// SDK tries again).
var errPositionLost = errors.New("wsgate: channel subscribers being resubscribed")

// fill delivers the publications after ch.top up to offset to from
// history. ch.mu is released during the read (an event loop that
// subscribes a client to ch takes it, and must not wait for the broker):
// what is read is delivered in order from ch.top as it is then, skipping
// what was delivered meanwhile, and nothing if the epoch changed. ch.mu
// held.
func (n *Node) fill(ch *channel, to uint64) {
	from, epoch := ch.top, ch.epoch
	ch.mu.Unlock()
	pubs, _, err := n.broker.History(ch.name, HistoryOptions{
		Since: &StreamPosition{Offset: from, Epoch: epoch}, Limit: int(to - from), TTL: time.Duration(ch.opts.HistoryTTL)})
	ch.mu.Lock()
	if err != nil {
		n.log.Warn("publications lost before delivery", "channel", ch.name, "after", from, "to", to, "err", err)
		return
	}
	if ch.epoch != epoch {
		return
	}
	for _, p := range pubs {
		if p.Offset <= ch.top {
			continue
		}
		if p.Offset != ch.top+1 || p.Offset > to {
			break
		}
		ch.top = p.Offset
		n.record(ch, p)
		if !ch.lost {
			n.fanOut(ch, p)
		}
	}
}

// record keeps pub, just delivered, in ch.recent while recovering
// subscribes read history. ch.mu held.
func (n *Node) record(ch *channel, pub *Publication) {
	if ch.catching == 0 {
		return
	}
	if len(ch.recent) >= n.cfg.Client.RecoveryMaxPublicationLimit {
		ch.recent = slices.Delete(ch.recent, 0, 1)
	}
	ch.recent = append(ch.recent, pub)
}

// fanOut encodes pub once per format with subscribers, prepares it once
// and publishes it to the format's engine topic. ch.mu held.
func (n *Node) fanOut(ch *channel, pub *Publication) {
	var key string
	if t := ch.opts.ConflationTag; t != "" {
		key = pub.Tags[t]
	}
	for f := uint8(0); f < 2; f++ {
		if ch.n[f] == 0 {
			continue
		}
		b := encodeReply(f, &protocol.Reply{Push: &protocol.Push{Channel: ch.name, Pub: toProtoPub(pub)}})
		op := codec.OpText
		if f == protoProtobuf {
			op = codec.OpBinary
		}
		pm, err := n.srv.Prepare(op, b, key)
		if err == nil {
			err = n.srv.Publish(topic(f, ch.name), pm)
		}
		if err != nil {
			n.log.Warn("fan-out failed", "channel", ch.name, "err", err)
		}
	}
}

func toProtoPub(p *Publication) *protocol.Publication {
	pp := &protocol.Publication{Data: p.Data, Offset: p.Offset, Tags: p.Tags}
	if p.Info != nil {
		pp.Info = &protocol.ClientInfo{User: p.Info.User, Client: p.Info.Client, ConnInfo: p.Info.ConnInfo}
	}
	return pp
}

// Ways leave removes a session from the engine topic.
const (
	leaveClosed = iota // the connection is closed: the engine dropped it
	leaveOnLoop        // on c's event loop: at once (a client's unsubscribe)
	leaveQueued        // from another goroutine: in order with publications
)

// leave removes c from ch. On c's event loop (leaveOnLoop) the engine
// subscription ends at once, so that no publication, even one already
// on its way to the loop, reaches a client that left: a later recovering
// subscribe returns it instead, once. c.mu held.
func (n *Node) leave(c *session, ch *channel, how int) {
	switch how {
	case leaveOnLoop:
		n.srv.UnsubscribeOnLoop(c.conn, topic(c.proto, ch.name))
	case leaveQueued:
		_ = n.srv.Unsubscribe(c.conn, topic(c.proto, ch.name))
	}
	ch.mu.Lock()
	ch.n[c.proto]--
	ch.mu.Unlock()
	n.release(ch)
}

// clientID formats a client's id: the node id and a sequence number.
func (n *Node) clientID(seq uint64) string {
	return n.id + "-" + strconv.FormatUint(seq, 16)
}

// NumClients returns the number of clients that completed connect.
func (n *Node) NumClients() int64 { return n.nconn.Load() }

// NumChannels returns the number of channels with subscribers on this
// node.
func (n *Node) NumChannels() int {
	total := 0
	for i := range n.channels {
		sh := &n.channels[i]
		sh.mu.Lock()
		total += len(sh.m)
		sh.mu.Unlock()
	}
	return total
}

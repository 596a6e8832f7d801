package wsgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"log/slog"
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

	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
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
// subscribes (history read, engine subscription, reply) against
// publications (offset check, engine publish), which gives recovery
// without gaps or duplicates.
type channel struct {
	name string
	refs int // guarded by the shard's mutex
	opts *ChannelOptions

	mu    sync.Mutex
	n     [2]int // subscribers per format
	init  bool
	top   uint64 // offset of the last publication handed to the engine topics (at creation: the stream's)
	epoch string
	// lost is set while the channel's subscribers on this node are being
	// told that their position is lost (see lose): nothing is fanned out
	// to them and nobody joins until they all are.
	lost bool
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
	t := cfg.Client.Token
	if n.conns, err = newVerifier(t.HMACSecretKey, t.RSAPublicKey, t.ECDSAPublicKey, t.Audience, t.Issuer); err != nil {
		return nil, err
	}
	n.subs = n.conns
	if st := cfg.Client.SubscriptionToken; st.Enabled {
		if n.subs, err = newVerifier(st.HMACSecretKey, st.RSAPublicKey, st.ECDSAPublicKey, st.Audience, st.Issuer); err != nil {
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

// Shutdown disconnects every client with 3001 "shutdown" and stops the
// engine.
func (n *Node) Shutdown(ctx context.Context) error {
	select {
	case <-n.stop:
	default:
		close(n.stop)
		if n.started.Load() {
			<-n.done
		}
	}
	n.eachClient(func(c *session) { c.disconnect(disconnectShutdown) })
	return n.srv.Shutdown(ctx)
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
// left are disconnected at once.
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
	sh.disconnects[code]++
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
	if c.state.Load() == stateClosed {
		return
	}
	if (c.proto == protoJSON) != (op == codec.OpText) {
		c.disconnect(disconnectBadRequest)
		return
	}
	var dec protocol.CommandDecoder
	if c.proto == protoJSON {
		dec = protocol.NewJSONCommandDecoder(p)
	} else {
		dec = protocol.NewProtobufCommandDecoder(p)
	}
	// The whole message is decoded first: a batch over MaxBatchSize is
	// refused before any of its commands runs. Commands with the same id
	// all run, as in Centrifugo.
	var cmds []*protocol.Command
	var err error
	last := true // the decoder's last result carried a command
	for {
		var cmd *protocol.Command
		cmd, err = dec.Decode()
		if cmd == nil && err == nil {
			err = errors.New("empty command")
		}
		if cmd != nil {
			if len(cmds) == n.cfg.Client.MaxBatchSize {
				c.disconnect(disconnectBadRequest)
				return
			}
			cmds = append(cmds, cmd)
		}
		if err != nil {
			last = cmd != nil
			break
		}
	}
	for _, cmd := range cmds {
		if d := n.handle(c, cmd); d != nil {
			c.disconnect(*d)
			return
		}
	}
	if !isEOF(err) || !last {
		c.disconnect(disconnectBadRequest)
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

// acquire returns the channel name, creating it (and subscribing the node
// to it at the broker) for its first user.
func (n *Node) acquire(name string, opts *ChannelOptions) (*channel, error) {
	sh := n.chShard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := sh.m[name]
	if ch == nil {
		name = strings.Clone(name)
		if err := n.broker.Subscribe(name); err != nil {
			return nil, err
		}
		ch = &channel{name: name, opts: opts}
		if opts.history() {
			// The stream position is read once, before anyone joins:
			// from then on the channel's offset is the last publication
			// handed to the engine topic, and no subscribe is answered
			// with a later one. (Read at a positioned subscribe instead,
			// it could include a publication appended to history but not
			// yet delivered here, which was then dropped as already
			// delivered, and the subscribers already there lost it.)
			_, sp, err := n.broker.History(name, HistoryOptions{})
			if err != nil {
				_ = n.broker.Unsubscribe(name)
				return nil, err
			}
			ch.init, ch.top, ch.epoch = true, sp.Offset, sp.Epoch
		}
		if sh.m == nil {
			sh.m = map[string]*channel{}
		}
		sh.m[name] = ch
	}
	ch.refs++
	return ch, nil
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
	if pub.Offset != 0 {
		same := ch.init && sp.Epoch == ch.epoch
		if same && pub.Offset <= ch.top {
			return
		}
		// Publications were lost on the way (a broker between nodes may
		// drop some): they are delivered from history first. When history
		// no longer holds them, or the stream's epoch changed, the
		// subscribers' position is lost and they are told so.
		if (ch.init && !same) || (pub.Offset > ch.top+1 && !n.fill(ch, pub.Offset-1)) {
			n.lose(ch)
		}
		ch.init, ch.top, ch.epoch = true, pub.Offset, sp.Epoch
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
// subscriptions. Until they all are, nothing is
// fanned out on ch and subscribes are refused with a temporary error:
// no subscriber sees a later publication after the gap, which would
// move its position past the loss. ch.mu held; the unsubscribing runs on
// its own goroutine, as it takes the sessions' locks.
func (n *Node) lose(ch *channel) {
	n.log.Warn("subscribers' position lost", "channel", ch.name, "after", ch.top, "epoch", ch.epoch)
	if ch.lost {
		return
	}
	ch.lost = true
	go func() {
		var cs []*session
		n.eachClient(func(c *session) {
			if c.state.Load() == stateConnected {
				cs = append(cs, c)
			}
		})
		for _, c := range cs {
			c.mu.Lock()
			if c.state.Load() == stateConnected {
				if i := c.subscribed(ch.name); i >= 0 && c.subAt(i).server {
					c.disconnect(disconnectInsufficient)
				} else if n.unsubscribe(c, ch.name, leaveQueued) {
					c.write(&protocol.Reply{Push: &protocol.Push{Channel: ch.name, Unsubscribe: insufficientState}})
				}
			}
			c.mu.Unlock()
		}
		ch.mu.Lock()
		ch.lost = false
		ch.mu.Unlock()
	}()
}

// errPositionLost refuses a subscribe while a channel's subscribers are
// told that their position is lost (answered as a temporary error: the
// SDK tries again).
var errPositionLost = errors.New("wsgate: channel subscribers being resubscribed")

// fill delivers the publications after ch.top up to offset to from
// history, and reports whether it delivered them all. ch.mu held.
func (n *Node) fill(ch *channel, to uint64) bool {
	pubs, _, err := n.broker.History(ch.name, HistoryOptions{
		Since: &StreamPosition{Offset: ch.top, Epoch: ch.epoch}, Limit: int(to - ch.top), TTL: time.Duration(ch.opts.HistoryTTL)})
	if err != nil {
		n.log.Warn("publications lost before delivery", "channel", ch.name, "after", ch.top, "to", to, "err", err)
		return false
	}
	for _, p := range pubs {
		if p.Offset != ch.top+1 || p.Offset > to {
			break
		}
		ch.top = p.Offset
		if !ch.lost {
			n.fanOut(ch, p)
		}
	}
	return ch.top == to
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

// join subscribes c to ch: with recovery when asked, the engine
// subscription, and then write (the reply or push), all under ch's lock
// so that no publication falls between the recovered ones and the live
// ones, nor arrives twice. c.mu held.
func (n *Node) join(c *session, ch *channel, req *protocol.SubscribeRequest, write func(*protocol.SubscribeResult)) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.lost {
		return errPositionLost
	}
	o := ch.opts
	res := &protocol.SubscribeResult{}
	recoverable := o.history() && (o.ForceRecovery || (o.AllowRecovery && req.Recoverable))
	positioned := o.history() && (recoverable || o.ForcePositioning || (o.AllowPositioning && req.Positioned))
	if positioned {
		res.Positioned, res.Recoverable = true, recoverable
		res.Epoch, res.Offset = ch.epoch, ch.top
		if recoverable && req.Recover {
			res.WasRecovering = true
			pubs, recovered, err := n.recover(ch, req.Offset, req.Epoch)
			if err != nil {
				return err
			}
			res.Recovered = recovered
			res.Publications = pubs
		}
	}
	if err := n.srv.Subscribe(c.conn, topic(c.proto, ch.name)); err != nil {
		return err
	}
	ch.n[c.proto]++
	write(res)
	return nil
}

// recover returns the publications after offset up to the channel's
// delivered offset (later ones arrive through the engine topic), and
// whether they are all of them. ch.mu held.
func (n *Node) recover(ch *channel, offset uint64, epoch string) ([]*protocol.Publication, bool, error) {
	if epoch != ch.epoch || offset > ch.top {
		return nil, false, nil
	}
	if offset == ch.top {
		return nil, true, nil
	}
	limit := n.cfg.Client.RecoveryMaxPublicationLimit
	if ch.top-offset > uint64(limit) {
		return nil, false, nil
	}
	pubs, sp, err := n.broker.History(ch.name, HistoryOptions{
		Since: &StreamPosition{Offset: offset, Epoch: epoch}, Limit: limit, TTL: time.Duration(ch.opts.HistoryTTL)})
	if errors.Is(err, ErrUnrecoverablePosition) || (err == nil && sp.Epoch != ch.epoch) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := make([]*protocol.Publication, 0, len(pubs))
	for _, p := range pubs {
		if p.Offset > ch.top {
			break
		}
		out = append(out, toProtoPub(p))
	}
	if len(out) == 0 || out[0].Offset != offset+1 || out[len(out)-1].Offset != ch.top {
		return nil, false, nil
	}
	return out, true, nil
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

package wsgate

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/centrifugal/protocol"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// Protocol formats.
const (
	protoJSON     uint8 = 0
	protoProtobuf uint8 = 1
)

// Client states.
const (
	stateNew uint32 = iota
	stateConnected
	stateClosed
)

// session is the gateway state of one connection: a few words, its first
// subscription inline and, behind x, what only some clients have. Its
// mutex serialises the connection's commands with server API operations
// on it; timestamps replace timers (see Node.sweep). A client with a
// connection token and one subscription holds this 96-byte struct and
// nothing else here (the user string is the token's).
type session struct {
	conn   *loop.Conn
	mu     sync.Mutex
	seq    uint64        // client id number
	state  atomic.Uint32 // stateNew, stateConnected, stateClosed
	seen   atomic.Uint32 // node clock (s) of the last message received
	exp    atomic.Uint32 // connection token expiry, Unix s (0: none)
	subExp atomic.Uint32 // earliest subscription token expiry, Unix s (0: none)
	opened uint32        // node clock (s) at upgrade
	idx    int32         // position in the node's client shard
	rateAt uint32        // node clock (s) of the rate window
	rateN  uint16        // commands in the rate window
	proto  uint8
	// closing: the server disconnected the client (disconnect); it
	// runs no more commands, and one waiting on the broker ends there.
	closing bool
	user    string
	sub0    sub         // the first subscription (ch nil: none)
	x       *sessionExt // nil unless the client has connection info or a second subscription
}

// sessionExt is what only some sessions need.
type sessionExt struct {
	info string // connection info from the token (bytes; a string is smaller)
	subs []sub  // the subscriptions after the first
	// cmds are the commands waiting for a worker, oldest first; the
	// first is running (see cmdqueue.go). counted: the first was counted
	// against the command rate limit already, on the event loop.
	// size is the bytes of cmds after the first (maxQueuedBytes).
	// calls are the API calls queued in cmds (apiCallCmd), oldest first.
	cmds    []*protocol.Command
	calls   []func() error
	size    int
	counted bool
}

// sessionSize is the size of a session, for the memory test.
const sessionSize = int(unsafe.Sizeof(session{}))

type sub struct {
	ch     *channel
	exp    uint32 // subscription token expiry, Unix s (0: none)
	server bool   // server-side: made by the connection token or the API
}

// nsubs returns the number of c's subscriptions. c.mu held.
func (c *session) nsubs() int {
	switch {
	case c.sub0.ch == nil:
		return 0
	case c.x == nil:
		return 1
	}
	return 1 + len(c.x.subs)
}

// subAt returns c's subscription i (0 <= i < nsubs). c.mu held.
func (c *session) subAt(i int) *sub {
	if i == 0 {
		return &c.sub0
	}
	return &c.x.subs[i-1]
}

// addSub appends s to c's subscriptions. c.mu held.
func (c *session) addSub(s sub) {
	if c.sub0.ch == nil {
		c.sub0 = s
		return
	}
	if c.x == nil {
		c.x = new(sessionExt)
	}
	c.x.subs = append(c.x.subs, s)
}

// removeSub removes c's subscription i; the last one takes its place.
// c.mu held.
func (c *session) removeSub(i int) {
	last := c.nsubs() - 1
	*c.subAt(i) = *c.subAt(last)
	if last == 0 {
		c.sub0 = sub{}
		return
	}
	c.x.subs[last-1] = sub{}
	c.x.subs = c.x.subs[:last-1]
	c.trimExt()
}

// info returns c's connection info.
func (c *session) info() string {
	if c.x == nil {
		return ""
	}
	return c.x.info
}

// setInfo sets c's connection info. c.mu held.
func (c *session) setInfo(info []byte) {
	if len(info) > 0 && c.x == nil {
		c.x = new(sessionExt)
	}
	if c.x != nil {
		c.x.info = string(info)
		c.trimExt()
	}
}

// trimExt frees c.x once it holds nothing. c.mu held.
func (c *session) trimExt() {
	if c.x != nil && c.x.info == "" && len(c.x.subs) == 0 && len(c.x.cmds) == 0 {
		c.x = nil
	}
}

func (c *session) id(n *Node) string { return n.clientID(c.seq) }

// disconnect is a protocol disconnect: a close code and reason.
type disconnect struct {
	Code   uint32
	Reason string
}

// Disconnect codes of the protocol (3000-3499: the client reconnects;
// 3500-3999: it does not).
var (
	disconnectShutdown      = disconnect{3001, "shutdown"}
	disconnectServerError   = disconnect{3004, "internal server error"}
	disconnectExpired       = disconnect{3005, "connection expired"}
	disconnectSubExpired    = disconnect{3006, "subscription expired"}
	disconnectNoPong        = disconnect{3012, "no pong"}
	disconnectTooMany       = disconnect{3013, "too many requests"}
	disconnectInsufficient  = disconnect{3010, "insufficient state"}
	disconnectInvalidToken  = disconnect{3500, "invalid token"}
	disconnectBadRequest    = disconnect{3501, "bad request"}
	disconnectStale         = disconnect{3502, "stale"}
	disconnectForceNoReconn = disconnect{3503, "force disconnect"}
	disconnectChannelLimit  = disconnect{3505, "channel limit"}
	disconnectNotAvailable  = disconnect{3508, "not available"}
)

// Error replies of the protocol.
var (
	errInternal          = &replyError{100, "internal server error", true}
	errUnknownChannel    = &replyError{102, "unknown channel", false}
	errPermissionDenied  = &replyError{103, "permission denied", false}
	errAlreadySubscribed = &replyError{105, "already subscribed", false}
	errLimitExceeded     = &replyError{106, "limit exceeded", false}
	errBadRequest        = &replyError{107, "bad request", false}
	errNotAvailable      = &replyError{108, "not available", false}
	errTokenExpiredReply = &replyError{109, "token expired", false}
	errExpired           = &replyError{110, "expired", false}
	errTooManyRequests   = &replyError{111, "too many requests", true}
	errUnrecoverable     = &replyError{112, "unrecoverable position", false}
)

// replyError is an error reply of the protocol.
type replyError struct {
	code      uint32
	msg       string
	temporary bool
}

func (e *replyError) Error() string { return e.msg }

func (e *replyError) proto() *protocol.Error {
	return &protocol.Error{Code: e.code, Message: e.msg, Temporary: e.temporary}
}

func isEOF(err error) bool { return err == io.EOF }

// encodeReply encodes r for format f (Protobuf: length-prefixed).
func encodeReply(f uint8, r *protocol.Reply) []byte {
	if f == protoJSON {
		b, _ := protocol.NewJSONReplyEncoder().Encode(r)
		return b
	}
	b, _ := r.MarshalCF()
	out := make([]byte, 0, len(b)+binary.MaxVarintLen64)
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func (c *session) writeRaw(b []byte) {
	op := codec.OpText
	if c.proto == protoProtobuf {
		op = codec.OpBinary
	}
	if err := c.conn.WriteMessage(op, b); err != nil && !errors.Is(err, loop.ErrClosed) {
		_ = c.conn.Close(codec.StatusCode(disconnectServerError.Code), disconnectServerError.Reason)
	}
}

func (c *session) write(r *protocol.Reply) { c.writeRaw(encodeReply(c.proto, r)) }

// disconnect closes the connection with d: from then on c runs no
// command; its queued commands are dropped unanswered, and one waiting
// on the broker ends there (unlocked). c.mu held.
func (c *session) disconnect(d disconnect) {
	c.closing = true
	if c.x != nil {
		c.x.cmds, c.x.calls, c.x.size, c.x.counted = nil, nil, 0, false
		c.trimExt()
	}
	_ = c.conn.Close(codec.StatusCode(d.Code), d.Reason)
}

// handle runs one command; a disconnect result disconnects. On the event
// loop (wait false) a command that needs the broker returns errWait
// before it has done anything: it is queued (see cmdqueue.go), and run
// again by a worker with wait set, which releases c.mu around broker
// calls. counted: the command was counted against the rate limit
// already. c.mu held.
func (n *Node) handle(c *session, cmd *protocol.Command, wait, counted bool) (err error) {
	state := c.state.Load()
	if state == stateClosed || c.closing {
		return nil
	}
	if cmd.Connect == nil && state != stateConnected {
		return disconnectBadRequest
	}
	method := commandMethod(cmd)
	if method != cmdNone {
		defer func(start time.Time) {
			if err != errWait {
				n.stats.shard(c.seq).cmds[method].observe(time.Since(start))
			}
		}(time.Now())
	}
	if cmd.Send != nil {
		// An asynchronous message, for which wsgate has no handler: as
		// Centrifugo without one, the client is told so by a disconnect
		// (a message has no reply to carry an error).
		return disconnectNotAvailable
	}
	if cmd.Id == 0 {
		// An empty command is a pong (its arrival is recorded already).
		if isPong(cmd) {
			return nil
		}
		return disconnectBadRequest
	}
	if lim := n.cfg.Client.CommandRateLimit; lim > 0 && !counted {
		now := n.clock()
		if c.rateAt != now {
			c.rateAt, c.rateN = now, 0
		}
		if int(c.rateN) >= lim {
			c.write(&protocol.Reply{Id: cmd.Id, Error: errTooManyRequests.proto()})
			return nil
		}
		c.rateN++
	}
	var rep *protocol.Reply
	id := cmd.Id
	switch {
	case cmd.Connect != nil:
		if state != stateNew {
			return disconnectBadRequest
		}
		rep, err = n.connect(c, id, cmd.Connect, wait)
	case cmd.Subscribe != nil:
		rep, err = n.clientSubscribe(c, id, cmd.Subscribe, wait)
	case cmd.Unsubscribe != nil:
		rep, err = n.clientUnsubscribe(c, id, cmd.Unsubscribe, wait)
	case cmd.Publish != nil:
		rep, err = n.clientPublish(c, id, cmd.Publish, wait)
	case cmd.History != nil:
		rep, err = n.clientHistory(c, id, cmd.History, wait)
	case cmd.Refresh != nil:
		rep, err = n.refresh(c, id, cmd.Refresh)
	case cmd.SubRefresh != nil:
		rep, err = n.subRefresh(c, id, cmd.SubRefresh)
	case cmd.Ping != nil:
		rep = &protocol.Reply{Id: id, Ping: &protocol.PingResult{}}
	case cmd.Presence != nil:
		err = n.noPresence(cmd.Presence.Channel)
	case cmd.PresenceStats != nil:
		err = n.noPresence(cmd.PresenceStats.Channel)
	case cmd.Rpc != nil:
		// Not implemented: answered as Centrifugo answers it where no
		// RPC proxy is configured.
		err = errNotAvailable
	default:
		return disconnectBadRequest
	}
	switch {
	case err == errWait:
		return err
	case err == errClientClosed:
	case err == nil:
		if rep != nil {
			c.write(rep)
		}
	default:
		return n.failed(c, id, err)
	}
	return nil
}

// failed answers command id, which failed with err: a disconnect is
// returned, to be made; a reply error is the command's reply; anything
// else is logged and answered with an internal error. Apart from handle,
// so that only a failing command pays for the error's variables on the
// heap. c.mu held.
func (n *Node) failed(c *session, id uint32, err error) error {
	var d disconnect
	if errors.As(err, &d) {
		return d
	}
	var pe *replyError
	if errors.As(err, &pe) {
		c.write(&protocol.Reply{Id: id, Error: pe.proto()})
		return nil
	}
	n.log.Warn("command failed", "client", c.id(n), "err", err)
	c.write(&protocol.Reply{Id: id, Error: errInternal.proto()})
	return nil
}

func (d disconnect) Error() string { return d.Reason }

// noPresence answers presence and presence_stats, which wsgate does not
// keep, as Centrifugo answers them where presence is off: a bad request
// without a channel, 102 for a channel in no namespace, else 108.
func (n *Node) noPresence(channel string) error {
	switch {
	case channel == "":
		return disconnectBadRequest
	case n.cfg.options(channel) == nil:
		return errUnknownChannel
	}
	return errNotAvailable
}

// commandMethod returns the method of cmd (cmdConnect, …), or cmdNone.
func commandMethod(cmd *protocol.Command) int {
	switch {
	case cmd.Connect != nil:
		return cmdConnect
	case cmd.Subscribe != nil:
		return cmdSubscribe
	case cmd.Unsubscribe != nil:
		return cmdUnsubscribe
	case cmd.Publish != nil:
		return cmdPublish
	case cmd.History != nil:
		return cmdHistory
	case cmd.Refresh != nil:
		return cmdRefresh
	case cmd.SubRefresh != nil:
		return cmdSubRefresh
	case cmd.Ping != nil:
		return cmdPing
	case cmd.Presence != nil:
		return cmdPresence
	case cmd.PresenceStats != nil:
		return cmdPresenceStats
	case cmd.Rpc != nil:
		return cmdRPC
	case cmd.Send != nil:
		return cmdSend
	}
	return cmdNone
}

func isPong(cmd *protocol.Command) bool {
	return cmd.Connect == nil && cmd.Subscribe == nil && cmd.Unsubscribe == nil && cmd.Publish == nil &&
		cmd.Presence == nil && cmd.PresenceStats == nil && cmd.History == nil && cmd.Ping == nil &&
		cmd.Send == nil && cmd.Rpc == nil && cmd.Refresh == nil && cmd.SubRefresh == nil
}

// ttl returns the seconds left until exp (Unix s), at least 1.
func ttl(exp int64) uint32 {
	d := exp - time.Now().Unix()
	if d < 1 {
		d = 1
	}
	return uint32(d)
}

func (n *Node) connect(c *session, id uint32, req *protocol.ConnectRequest, wait bool) (*protocol.Reply, error) {
	var cl *claims
	var info []byte
	if req.Token != "" {
		var err error
		cl, err = n.conns.verify(req.Token)
		switch {
		case errors.Is(err, errTokenExpired):
			return nil, errTokenExpiredReply
		case err != nil || cl.Channel != "":
			// A token with a channel claim is a subscription token: as
			// Centrifugo, it is no connection token.
			return nil, disconnectInvalidToken
		}
		if info, err = cl.info(); err != nil {
			return nil, errInternal
		}
	} else if !n.cfg.Client.AllowAnonymousConnectWithoutToken {
		return nil, disconnectBadRequest // as Centrifugo: no token is a bad request, not a bad token
	}
	res := &protocol.ConnectResult{Client: c.id(n), Version: Version, Node: n.id}
	var exp int64
	if cl != nil {
		var lapsed bool
		if exp, lapsed = cl.expiry(); lapsed {
			return nil, errExpired
		}
		if exp > 0 {
			res.Expires, res.Ttl = true, ttl(exp)
		}
	}
	if p := n.cfg.Client.PingInterval; p > 0 {
		res.Ping, res.Pong = uint32(time.Duration(p)/time.Second), true
	}
	// Server-side subscriptions: their results go into the connect reply,
	// written under their channels' locks (subscribe), so that no
	// publication of theirs reaches the connection before it.
	var js []*joining
	if cl != nil {
		for _, name := range cl.Channels {
			// As Centrifugo: an empty name is skipped, and one in no
			// namespace fails the connect (102).
			if name == "" || slices.ContainsFunc(js, func(j *joining) bool { return j.name == name }) {
				continue
			}
			opts := n.cfg.options(name)
			if opts == nil {
				return nil, errUnknownChannel
			}
			if len(js) >= n.cfg.Client.ChannelLimit {
				return nil, disconnectChannelLimit
			}
			if opts.ConflationTag != "" && !wait {
				// The connection's slow policy becomes conflation by the
				// channel's tag; event-loop only, and a connect runs
				// there first (it is a connection's first command).
				c.conn.SetSlowPolicy(loop.SlowConflate)
			}
			sreq := req.Subs[name]
			if sreq == nil {
				sreq = &protocol.SubscribeRequest{}
			}
			js = append(js, &joining{name: name, opts: opts, req: sreq, server: true})
		}
	}
	connected := func() {
		if cl != nil {
			c.user = cl.Subject
			c.setInfo(info)
			c.exp.Store(uint32(exp))
		}
		c.state.Store(stateConnected)
		n.nconn.Add(1)
		n.stats.shard(c.seq).connects.Add(1)
		if n.debug() {
			n.log.Debug("client connected", "client", c.id(n), "user", c.user, "remote", c.conn.RemoteAddr().String())
		}
	}
	if len(js) == 0 {
		connected()
		return &protocol.Reply{Id: id, Connect: res}, nil
	}
	err := n.subscribe(c, js, wait, func() error { return nil }, func() {
		res.Subs = make(map[string]*protocol.SubscribeResult, len(js))
		for _, j := range js {
			res.Subs[j.name] = j.res
		}
		connected()
		c.write(&protocol.Reply{Id: id, Connect: res})
	})
	switch {
	case err == errWait || err == errClientClosed:
		return nil, err
	case err != nil:
		n.log.Warn("server-side subscriptions failed", "client", c.id(n), "err", err)
		return nil, disconnectServerError
	}
	return nil, nil
}

// subscribed returns the index of channel name in c's subscriptions, or
// -1. c.mu held.
func (c *session) subscribed(name string) int {
	for i := range c.nsubs() {
		if c.subAt(i).ch.name == name {
			return i
		}
	}
	return -1
}

func (c *session) updateSubExp() {
	var m uint32
	for i := range c.nsubs() {
		if s := c.subAt(i); s.exp != 0 && (m == 0 || s.exp < m) {
			m = s.exp
		}
	}
	c.subExp.Store(m)
}

// MaxChannelLength is the longest channel name accepted (Centrifugo's
// default); longer names get error 107 bad request, as in Centrifugo.
const MaxChannelLength = 255

func (n *Node) clientSubscribe(c *session, id uint32, req *protocol.SubscribeRequest, wait bool) (*protocol.Reply, error) {
	if req.Channel == "" {
		return nil, disconnectBadRequest
	}
	if len(req.Channel) > MaxChannelLength {
		return nil, errBadRequest // as Centrifugo
	}
	opts := n.cfg.options(req.Channel)
	if opts == nil {
		return nil, errUnknownChannel
	}
	valid := func() error {
		if c.subscribed(req.Channel) >= 0 {
			return errAlreadySubscribed
		}
		if c.nsubs() >= n.cfg.Client.ChannelLimit {
			return errLimitExceeded
		}
		return nil
	}
	if err := valid(); err != nil {
		return nil, err
	}
	var exp uint32
	if req.Token != "" {
		cl, err := n.subs.verify(req.Token)
		switch {
		case errors.Is(err, errTokenExpired):
			return nil, errTokenExpiredReply
		case err != nil || cl.Channel == "":
			return nil, errPermissionDenied // as Centrifugo: no disconnect
		case cl.Channel != req.Channel || cl.Subject != c.user || (cl.Client != "" && cl.Client != c.id(n)):
			return nil, disconnectInvalidToken
		}
		e, lapsed := cl.expiry()
		if lapsed {
			return nil, errExpired
		}
		exp = uint32(e)
	} else if isPrivate(req.Channel) || !opts.AllowSubscribeForClient || (c.user == "" && !opts.AllowSubscribeForAnonymous) {
		return nil, errPermissionDenied
	}
	// (A conflation channel's slow policy was set when the command
	// arrived, on the event loop: OnMessage.)
	// The reply is written inside subscribe, under the channel's lock.
	j := &joining{name: req.Channel, opts: opts, req: req, exp: exp}
	return nil, n.subscribe(c, []*joining{j}, wait, valid, func() {
		if exp != 0 {
			j.res.Expires, j.res.Ttl = true, ttl(int64(exp))
		}
		c.write(&protocol.Reply{Id: id, Subscribe: j.res})
	})
}

func (n *Node) clientUnsubscribe(c *session, id uint32, req *protocol.UnsubscribeRequest, wait bool) (*protocol.Reply, error) {
	if req.Channel == "" {
		return nil, disconnectBadRequest
	}
	how := leaveOnLoop // on c's event loop (OnMessage)
	if wait {
		how = leaveQueued // on a worker, behind a queued command
	}
	n.unsubscribe(c, req.Channel, how)
	return &protocol.Reply{Id: id, Unsubscribe: &protocol.UnsubscribeResult{}}, nil
}

// unsubscribe removes c's subscription to name, if any; how is leave's.
// c.mu held.
func (n *Node) unsubscribe(c *session, name string, how int) bool {
	i := c.subscribed(name)
	if i < 0 {
		return false
	}
	ch := c.subAt(i).ch
	c.removeSub(i)
	c.updateSubExp()
	n.leave(c, ch, how)
	return true
}

// unlocked calls f with c.mu released, on a worker (wait); on the event
// loop it is errWait. It is errClientClosed if c closed, or the server
// disconnected it, meanwhile. c.mu held.
func (c *session) unlocked(wait bool, f func() error) error {
	if !wait {
		return errWait
	}
	c.mu.Unlock()
	err := f()
	c.mu.Lock()
	if c.state.Load() == stateClosed || c.closing {
		return errClientClosed
	}
	return err
}

func (n *Node) clientPublish(c *session, id uint32, req *protocol.PublishRequest, wait bool) (*protocol.Reply, error) {
	if req.Channel == "" {
		return nil, disconnectBadRequest
	}
	if len(req.Data) == 0 {
		return nil, errBadRequest // as Centrifugo: an error reply, the connection stays
	}
	if len(req.Channel) > MaxChannelLength {
		return nil, errBadRequest // as Centrifugo
	}
	opts := n.cfg.options(req.Channel)
	if opts == nil {
		return nil, errUnknownChannel
	}
	allowed := (opts.AllowPublishForClient && (c.user != "" || opts.AllowPublishForAnonymous)) ||
		(opts.AllowPublishForSubscriber && c.subscribed(req.Channel) >= 0)
	if !allowed {
		return nil, errPermissionDenied
	}
	info := &ClientInfo{User: c.user, Client: c.id(n), ConnInfo: []byte(c.info())}
	err := c.unlocked(wait, func() error {
		_, err := n.publish(pubClient, req.Channel, req.Data, PublishOptions{Info: info})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &protocol.Reply{Id: id, Publish: &protocol.PublishResult{}}, nil
}

// history answers a history request (the API's or a client's) as
// Centrifugo does. With o.Since, the publications still held after that
// position (o.Reverse: before it, newest first), at most o.Limit; a
// position of another epoch is ErrUnrecoverablePosition, but one whose
// successor is no longer held, or beyond the top, is not: the answer is
// what is held (it may be none). The broker's since, made for recovery,
// refuses those; then all the channel holds is read and filtered.
func (n *Node) history(channel string, o HistoryOptions) ([]*Publication, StreamPosition, error) {
	since := o.Since
	if since == nil {
		return n.broker.History(channel, o)
	}
	if !o.Reverse {
		pubs, sp, err := n.broker.History(channel, o)
		if !errors.Is(err, ErrUnrecoverablePosition) {
			return pubs, sp, err
		}
	}
	all := o
	all.Since, all.Limit = nil, -1
	pubs, sp, err := n.broker.History(channel, all)
	if err != nil {
		return nil, sp, err
	}
	if since.Epoch != "" && since.Epoch != sp.Epoch {
		return nil, sp, ErrUnrecoverablePosition
	}
	if o.Reverse && since.Offset > sp.Offset+1 {
		return nil, sp, nil // as Centrifugo: reading back from past the top finds none
	}
	pubs = slices.DeleteFunc(pubs, func(p *Publication) bool {
		if o.Reverse {
			return p.Offset >= since.Offset
		}
		return p.Offset <= since.Offset
	})
	if o.Limit >= 0 && len(pubs) > o.Limit {
		pubs = pubs[:o.Limit]
	}
	return pubs, sp, nil
}

func (n *Node) clientHistory(c *session, id uint32, req *protocol.HistoryRequest, wait bool) (*protocol.Reply, error) {
	if req.Channel == "" {
		return nil, disconnectBadRequest
	}
	opts := n.cfg.options(req.Channel)
	if opts == nil {
		return nil, errUnknownChannel
	}
	allowed := (opts.AllowHistoryForClient && (c.user != "" || opts.AllowHistoryForAnonymous)) ||
		(opts.AllowHistoryForSubscriber && c.subscribed(req.Channel) >= 0)
	if !opts.history() {
		return nil, errNotAvailable // as Centrifugo: before the permission check
	}
	if !allowed {
		return nil, errPermissionDenied
	}
	limit := int(req.Limit)
	if max := n.cfg.Client.HistoryMaxPublicationLimit; limit < 0 || limit > max {
		limit = max
	}
	var since *StreamPosition
	if req.Since != nil {
		since = &StreamPosition{Offset: req.Since.Offset, Epoch: req.Since.Epoch}
	}
	var pubs []*Publication
	var sp StreamPosition
	err := c.unlocked(wait, func() (err error) {
		pubs, sp, err = n.history(req.Channel, HistoryOptions{Since: since, Limit: limit, Reverse: req.Reverse, TTL: time.Duration(opts.HistoryTTL)})
		return err
	})
	if errors.Is(err, ErrUnrecoverablePosition) {
		return nil, errUnrecoverable
	}
	if err != nil {
		return nil, err
	}
	res := &protocol.HistoryResult{Epoch: sp.Epoch, Offset: sp.Offset, Publications: make([]*protocol.Publication, len(pubs))}
	for i, p := range pubs {
		res.Publications[i] = toProtoPub(p)
	}
	return &protocol.Reply{Id: id, History: res}, nil
}

func (n *Node) refresh(c *session, id uint32, req *protocol.RefreshRequest) (*protocol.Reply, error) {
	if req.Token == "" {
		return nil, disconnectBadRequest
	}
	cl, err := n.conns.verify(req.Token)
	switch {
	case errors.Is(err, errTokenExpired):
		return nil, disconnectExpired
	case err != nil || cl.Channel != "" || cl.Subject != c.user:
		return nil, disconnectInvalidToken
	}
	info, err := cl.info()
	if err != nil {
		return nil, errInternal
	}
	exp, lapsed := cl.expiry()
	if lapsed {
		return nil, errExpired
	}
	res := &protocol.RefreshResult{Client: c.id(n), Version: Version}
	c.exp.Store(uint32(exp))
	if exp > 0 {
		res.Expires, res.Ttl = true, ttl(exp)
	}
	if info != nil {
		c.setInfo(info)
	}
	return &protocol.Reply{Id: id, Refresh: res}, nil
}

func (n *Node) subRefresh(c *session, id uint32, req *protocol.SubRefreshRequest) (*protocol.Reply, error) {
	if req.Channel == "" || req.Token == "" {
		return nil, disconnectBadRequest
	}
	i := c.subscribed(req.Channel)
	if i < 0 {
		return nil, errPermissionDenied
	}
	cl, err := n.subs.verify(req.Token)
	switch {
	case errors.Is(err, errTokenExpired):
		return nil, disconnectSubExpired
	case err != nil || cl.Channel != req.Channel || cl.Subject != c.user || (cl.Client != "" && cl.Client != c.id(n)):
		return nil, disconnectInvalidToken
	}
	exp, lapsed := cl.expiry()
	if lapsed {
		return nil, errExpired
	}
	c.subAt(i).exp = uint32(exp)
	c.updateSubExp()
	res := &protocol.SubRefreshResult{}
	if exp > 0 {
		res.Expires, res.Ttl = true, ttl(exp)
	}
	return &protocol.Reply{Id: id, SubRefresh: res}, nil
}

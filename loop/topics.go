//go:build !windows

package loop

import (
	"context"
	"errors"

	"github.com/wsgate/wsgate/codec"
)

// Fan-out: topics, the loop's inbox and slow-consumer policies.
//
// A message for many connections is framed once (PreparedMessage) and,
// for connections with permessage-deflate, compressed once per window
// size; every subscriber of a class gets the same bytes. With server
// context takeover, subscribers whose windows hold the same last messages
// of the topic get one compression made with that history (see stream,
// shared.go): small ticks shrink to ~0.3 instead of going out whole.
// Publishing hands
// one task per event loop per batch: Publish appends to each loop's inbox
// and only the first message of a batch schedules the loop. The loop then
// queues the message for each of its subscribers and flushes each
// connection once, so a burst costs one write per connection.

// SlowPolicy says what happens to a published message for a connection
// whose queue would go above Options.HighWaterBytes. The queue is what
// wsgate holds for the connection; what it has handed to gnet (at most
// ~512 KiB, given only while gnet's buffer is under 256 KiB; with
// SlowConflate and a slow peer, on Linux, what the peer drains in 50 ms)
// can no longer be dropped, and is counted in PendingBytes but not against
// the mark.
// Whatever the policy, a connection above MaxPendingBytes is closed with
// 1008, and messages sent with Conn.WriteMessage are never dropped: that
// write fails instead (ErrSlowConsumer).
type SlowPolicy uint8

const (
	// SlowDisconnect closes the connection with 1008 (the default).
	SlowDisconnect SlowPolicy = iota
	// SlowDropNewest drops the new message.
	SlowDropNewest
	// SlowDropOldest drops queued whole published messages, oldest first,
	// until the new one fits; if not enough of them are queued the new one
	// is dropped.
	SlowDropOldest
	// SlowConflate keeps only the latest message per key while the
	// connection is behind (the last flush left data in the queue, or
	// gnet holds bytes the kernel would not take): a message with a key
	// replaces the queued one with the same key, in its place in the
	// queue (at the end with deflate's server context takeover, or when a
	// message written with Conn.WriteMessage was queued after it, which it
	// must not overtake), so keys updated in turn are sent in turn. Above the mark, messages that
	// replace nothing are dropped. For market data: a slow client gets the
	// latest price of each instrument, not a backlog; a client that keeps
	// up gets every message.
	//
	// On Linux a slow peer (one that drains less than 1.28 MB/s) is held to
	// an in-flight window sized from the rate it acknowledges bytes: gnet
	// and the kernel are given only what it drains in about 50 ms (at least
	// 512 bytes or one frame), so its backlog stays in the queue, where it
	// is conflated. What a slow client reads is then about as old as what
	// its own receive buffer holds at its read rate: with 200 quotes a
	// second on 20 keys to 200 clients, the 10 reading 50 a second through
	// a 2 KiB SO_RCVBUF read quotes 0.28 s old (median; 0.79 s at most),
	// where they read them 45 s old without the window. Elsewhere it is
	// flushed like the other policies, and what was handed to gnet and the
	// kernel goes out however old it is.
	SlowConflate
)

// topic is one loop's subscribers of a topic.
type topic struct {
	name    string
	subs    []*Conn
	streams []*stream // deflate with server context takeover: see stream
}

// topicRef is one of a connection's topics and the connection's position
// in the topic's subs. The positions live with the connections, not in a
// map per topic: a subscription costs a pointer in subs and this entry,
// and finding one walks the connection's own topics, which are few.
type topicRef struct {
	t *topic
	i int32
}

// connExt holds what only some connections need, so that the others pay
// one nil pointer for it: the topics after the first (Conn.t0) and,
// behind more, what fewer still need. A connection needs none for one
// topic; for more, it holds this 32-byte struct and a topicRef for each
// of the others.
type connExt struct {
	topics []topicRef
	more   *connMore
}

// connMore is the part of connExt for connections that compress with
// context takeover, conflate or fall behind.
type connMore struct {
	dfl *deflateState
	ix  keyIndex // conflation: where each key's message is queued
	// charged is what the connection holds of Options.SendBudget: its
	// pending bytes after its last flush, if it was behind.
	charged int64
	win     sendWindow // SlowConflate: the in-flight window (kept while conflating)
}

func (c *Conn) x() *connExt {
	if c.ext == nil {
		c.ext = new(connExt)
	}
	return c.ext
}

// m returns c's connMore, allocating it.
func (c *Conn) m() *connMore {
	x := c.x()
	if x.more == nil {
		x.more = new(connMore)
	}
	return x.more
}

// more returns c's connMore, or nil if it has none.
func (c *Conn) more() *connMore {
	if c.ext == nil {
		return nil
	}
	return c.ext.more
}

// dropExt frees c.ext, or its connMore, once they hold nothing.
// Event-loop only.
func (c *Conn) dropExt() {
	x := c.ext
	if x == nil {
		return
	}
	if m := x.more; m != nil && m.dfl == nil && m.ix.keys == nil && m.charged == 0 &&
		(m.win.at == 0 || c.policy != uint8(SlowConflate)) {
		x.more = nil
	}
	if len(x.topics) == 0 && x.more == nil {
		c.ext = nil
	}
}

// ref returns c's topicRef of t, or nil.
func (c *Conn) ref(t *topic) *topicRef {
	if c.t0.t == t {
		return &c.t0
	}
	if c.ext != nil {
		for j := range c.ext.topics {
			if r := &c.ext.topics[j]; r.t == t {
				return r
			}
		}
	}
	return nil
}

// errNotBusy is enqueue's answer when it was asked to add only to a busy
// inbox and the inbox was idle.
var errNotBusy = errors.New("loop: inbox not busy")

// Delivery kinds.
const (
	dPublish uint8 = iota // pm to topic's subscribers ("": every connection)
	dSub                  // subscribe c to topic
	dUnsub                // unsubscribe c from topic
	dWrite                // c.WriteMessage(op, msg) made while the inbox was busy
	dClose                // c.Close(code, reason) made while the inbox was busy
)

// delivery is an entry of a loop's inbox: a published message, or an
// operation on one connection that must keep its order with them.
type delivery struct {
	kind     uint8
	compress bool // dWrite
	op       codec.OpCode
	code     codec.StatusCode // dClose
	topic    string           // dPublish, dSub, dUnsub; dClose: the reason
	pm       *PreparedMessage
	c        *Conn
	msg      []byte // dWrite: a copy of the payload
}

// SetSlowPolicy sets what happens to published messages when c is slow.
// Event-loop only (e.g. in OnOpen); the default is Options.SlowPolicy.
func (c *Conn) SetSlowPolicy(p SlowPolicy) { c.policy = uint8(p) }

// Subscribe adds c to topic. Safe from any goroutine; it takes effect on
// c's event loop, before any message published after it returns and
// after every message published before it (which does not reach c
// through topic). A message written to c after Subscribe returns reaches
// c before the messages published after it.
func (s *Server) Subscribe(c *Conn, name string) error {
	return c.ls.enqueue(delivery{kind: dSub, topic: name, c: c}, false)
}

// Unsubscribe removes c from topic. Safe from any goroutine; no message
// published after it returns reaches c through topic.
func (s *Server) Unsubscribe(c *Conn, name string) error {
	return c.ls.enqueue(delivery{kind: dUnsub, topic: name, c: c}, false)
}

// UnsubscribeOnLoop removes c from topic at once: no message published
// to topic, even one published before it and still in the loop's inbox,
// reaches c through topic after it returns, and a Subscribe of c to topic
// still waiting in the inbox is cancelled. It must be called on c's
// event loop, in a Handler callback for c (OnOpen, OnMessage, OnClose),
// not while the loop delivers published messages. Use it when the
// connection itself leaves a topic (a client's unsubscribe): with the
// queued Unsubscribe, publications already in the inbox would still
// reach c after it left.
func (s *Server) UnsubscribeOnLoop(c *Conn, name string) {
	ls := c.ls
	ls.inboxMu.Lock()
	for i := range ls.inbox {
		if d := &ls.inbox[i]; d.kind == dSub && d.c == c && d.topic == name {
			d.kind = dUnsub // a no-op by then: c is not subscribed
		}
	}
	ls.inboxMu.Unlock()
	if t := ls.topics[name]; t != nil {
		ls.unsubscribe(c, t)
		c.dropExt()
	}
}

// subscribe adds c to the topic name. Event-loop only.
func (ls *loopState) subscribe(c *Conn, name string) {
	if c.state >= stateClosing {
		return
	}
	t := ls.topics[name]
	if t == nil {
		t = &topic{name: name}
		if ls.topics == nil {
			ls.topics = make(map[string]*topic)
		}
		ls.topics[name] = t
	} else if c.ref(t) != nil {
		return
	}
	r := topicRef{t: t, i: int32(len(t.subs))}
	if c.t0.t == nil {
		c.t0 = r
	} else {
		x := c.x()
		x.topics = append(x.topics, r)
	}
	t.subs = append(t.subs, c)
	ls.stats.subs.Add(1)
}

// unsubscribe removes c from t, and t from c's topics. Event-loop only.
func (ls *loopState) unsubscribe(c *Conn, t *topic) {
	r := c.ref(t)
	if r == nil {
		return
	}
	i := r.i
	// Fill r's place with c's last topic.
	if x := c.ext; x != nil && len(x.topics) > 0 {
		n := len(x.topics) - 1
		*r = x.topics[n]
		x.topics[n] = topicRef{}
		x.topics = x.topics[:n]
	} else {
		c.t0 = topicRef{}
	}
	last := t.subs[len(t.subs)-1]
	if last != c {
		t.subs[i] = last
		last.ref(t).i = i
	}
	t.subs[len(t.subs)-1] = nil
	t.subs = t.subs[:len(t.subs)-1]
	ls.stats.subs.Add(-1)
	if len(t.subs) == 0 {
		delete(ls.topics, t.name)
	}
}

// unsubscribeAll is called when c closes. Event-loop only.
func (ls *loopState) unsubscribeAll(c *Conn) {
	for c.t0.t != nil {
		ls.unsubscribe(c, c.t0.t)
	}
}

// Publish sends pm to every subscriber of topic. Safe from any goroutine;
// it returns once each event loop has the message in its inbox.
func (s *Server) Publish(topic string, pm *PreparedMessage) error {
	if topic == "" {
		return ErrEmptyTopic
	}
	return s.publish(topic, pm)
}

func (s *Server) publish(topic string, pm *PreparedMessage) error {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	var err error
	for _, ls := range loops {
		if e := ls.enqueue(delivery{kind: dPublish, topic: topic, pm: pm}, false); e != nil {
			err = e
		}
	}
	return err
}

// enqueue adds d to the loop's inbox, and schedules a drain if it is the
// first: one hand-off to the loop per batch. The inbox is busy from then
// until the drain has handled all of it. Safe from any goroutine.
//
// With ifBusy, d is only added if the inbox is busy; errNotBusy says it
// was not (the caller then acts at once).
func (ls *loopState) enqueue(d delivery, ifBusy bool) error {
	ls.inboxMu.Lock()
	switch {
	case ls.stopped:
		ls.inboxMu.Unlock()
		return ErrServerClosed
	case ifBusy && !ls.busy:
		ls.inboxMu.Unlock()
		return errNotBusy
	}
	ls.inbox = append(ls.inbox, d)
	ls.busy = true
	schedule := len(ls.inbox) == 1
	ls.inboxMu.Unlock()
	if !schedule {
		return nil
	}
	if err := ls.el.Execute(context.Background(), ls.drainer); err != nil {
		// The loop has stopped: nothing will drain the inbox again. Keep
		// nothing, and refuse what comes after.
		ls.inboxMu.Lock()
		ls.stopped, ls.busy = true, false
		clear(ls.inbox)
		ls.inbox = ls.inbox[:0]
		ls.inboxMu.Unlock()
		return ErrServerClosed
	}
	return nil
}

// drain delivers the loop's inbox. Event-loop only.
func (ls *loopState) drain(context.Context) error {
	ls.inboxMu.Lock()
	batch := ls.inbox
	ls.inbox = ls.spare[:0]
	ls.inboxMu.Unlock()
	for i, d := range batch {
		switch {
		case d.kind == dSub:
			ls.subscribe(d.c, d.topic)
		case d.kind == dUnsub:
			if t := ls.topics[d.topic]; t != nil {
				ls.unsubscribe(d.c, t)
				d.c.dropExt()
			}
		case d.kind == dWrite || d.kind == dClose:
			if d.c.state == stateClosed {
				break
			}
			d.c.mu.Lock()
			d.c.wflags |= wBusy // flushed below, with the others touched
			d.c.mu.Unlock()
			if d.kind == dWrite {
				_ = d.c.queueMessage(d.op, d.msg, d.compress)
			} else {
				_ = d.c.queueClose(d.code, d.topic)
			}
			ls.touch(d.c)
		case d.topic == "":
			ls.seq++
			ls.wheel.each(func(c *Conn) { ls.deliver(c, d.pm, nil) })
		default:
			ls.seq++
			if t := ls.topics[d.topic]; t != nil {
				for _, c := range t.subs {
					ls.deliver(c, d.pm, t)
				}
			}
		}
		batch[i] = delivery{}
		if ls.flushSoon {
			ls.flushTouched()
		}
	}
	ls.spare = batch[:0]
	ls.flushTouched()
	ls.inboxMu.Lock()
	if len(ls.inbox) == 0 {
		ls.busy = false // else the drain scheduled by the first of them comes
	}
	ls.inboxMu.Unlock()
	return nil
}

// deliver queues pm for c according to its slow-consumer policy.
// Event-loop only.
func (ls *loopState) deliver(c *Conn, pm *PreparedMessage, t *topic) {
	if c.state != stateOpen {
		return
	}
	s := ls.srv
	var (
		frames     []byte
		compressed bool
	)
	policy := SlowPolicy(c.policy)
	var st *stream // the stream whose frames c is given (see stream)
	if c.rflags&rDeflate != 0 && c.dparams.ServerContextTakeover {
		d := c.dfl()
		shallow := false
		switch {
		case !shareable(policy):
			c.untrack(false)
		case t != nil:
			st = t.stream(c.dparams)
		case d != nil && d.sh != nil:
			st = d.sh // a broadcast: see stream
			shallow = !ls.broadcasts.has(st)
		default:
			st = ls.broadcasts.stream(c.dparams)
		}
		if st != nil {
			st.prepare(ls, pm, shallow)
			frames, compressed = st.choose(ls, c, pm)
		}
	}
	if st == nil {
		frames, compressed = c.framesOf(pm)
	}
	takeover := compressed && c.dparams.ServerContextTakeover && st == nil
	marker := false

	c.mu.Lock()
	if c.wflags&(wCloseQ|wClosed|wSlow) != 0 {
		c.mu.Unlock()
		return
	}
	c.unstageLocked() // an earlier message of this drain
	if c.wflags&wWrote != 0 {
		// Messages written since the last delivery end the queue: keys
		// queued before them stay before them (see keyIndex.fence).
		c.wflags &^= wWrote
		if m := c.more(); m != nil && m.ix.keys != nil && c.q.data != nil {
			m.ix.fence = m.ix.base + int64(len(c.q.data.B))
		}
	}
	if (takeover || st != nil) && c.wflags&wMarkers != 0 {
		// Messages queued by WriteMessage are compressed at flush with
		// the History; this one must enter the History after them, so it
		// is compressed in its turn too rather than shared.
		if st != nil {
			c.untrack(true)
			st = nil
		}
		frames = codec.AppendFrame(nil, codec.Header{Fin: true, Rsv: rsvDeflate, OpCode: pm.op}, pm.payload)
		takeover, marker = false, true
	}
	behind := c.behindLocked()
	conflate := policy == SlowConflate && pm.key != "" && behind
	// Without context takeover the new value takes the old one's place in
	// line; with it, the send History must see messages in queue order,
	// so the old one is removed and the new one queued at the end.
	inPlace := conflate && !takeover && !marker && c.replaceKeyLocked(pm.key, frames)
	replaced := inPlace || conflate && c.unqueueKeyLocked(pm.key)
	if replaced {
		ls.stats.conflated.Add(1)
	}
	// Above the high-water mark the policy decides; a message that
	// replaced its key's queued one is kept (dropping it too would lose
	// the key's latest value).
	add := len(frames)
	if inPlace {
		add = 0 // already queued
	}
	over := c.queuedLocked() + add - s.opts.HighWaterBytes
	hard := c.pendingLocked()+add > s.opts.MaxPendingBytes
	if over > 0 && !hard && !behind {
		// gnet's buffer had drained at the last flush (and a conflating
		// connection's window had room): the queue was filled by this
		// drain, which has not flushed yet. A burst is not
		// a slow consumer: the drain flushes before its next delivery,
		// and the policy judges what the kernel would not take.
		over = 0
		ls.flushSoon = true
	}
	if over <= 0 && c.overSendBudgetLocked(c.pendingLocked()+len(frames)) {
		// Behind beyond its allowance, and the server-wide budget is
		// spent: as above the mark.
		over = len(frames)
	}
	if over > 0 && !replaced || hard {
		room := false
		if policy == SlowDropOldest && !hard {
			dropped, freed := c.q.dropOldest(over, c.wflags&wMidMsg != 0, c.index())
			if dropped > 0 {
				ls.stats.dropped.Add(int64(dropped))
				c.releaseSendHistory()
			}
			room = freed >= over
		}
		switch {
		case policy == SlowDisconnect || hard:
			c.wflags |= wSlow // flush fails it with 1008
			c.mu.Unlock()
			ls.touch(c)
			return
		case room:
		default: // drop-newest, conflate with nothing to replace, not enough droppable
			c.mu.Unlock()
			ls.stats.dropped.Add(1)
			return
		}
	}
	if inPlace || st == nil && !marker && !conflate && !behind && c.stageLocked(pm, len(frames)) {
		// queued already
	} else {
		// Frames of a tracked connection are never dropped: later ones
		// may refer to them (see stream).
		at := c.q.push(frames, st == nil)
		if marker {
			c.wflags |= wMarkers
		}
		if conflate {
			c.m().ix.set(pm.key, at)
		}
	}
	switch {
	case behind:
		// Behind: charged now, not at the flush, so that the rest of this
		// drain sees the budget this message takes (a connection within
		// its allowance writes nothing). A conflating connection held to
		// its window is behind with gnet's buffer empty: it must not make
		// the drain flush after every message.
		c.chargeLocked()
	case s.opts.SendBudget > 0 && c.pendingLocked() > sendAllowance:
		// Past its allowance within this drain, and not known to be
		// behind: the flush before the next delivery tells (and charges
		// what the kernel does not take).
		ls.flushSoon = true
	}
	c.mu.Unlock()
	switch {
	case st != nil:
		c.tracked(st)
	case takeover:
		c.sendHistory().Add(pm.payload, c.dparams)
	}
	ls.stats.delivered.Add(1)
	ls.touch(c)
}

// framesOf returns the frames of pm that c is sent: compressed for its
// window size where it negotiated permessage-deflate and pm compresses,
// else plain.
func (c *Conn) framesOf(pm *PreparedMessage) (frames []byte, compressed bool) {
	if c.rflags&rDeflate != 0 {
		if z := pm.compressed(c.ls.srv, c.dparams.ServerMaxWindowBits); z != nil {
			return z, true
		}
	}
	return pm.plain, false
}

// Staging: a published message for a connection with nothing queued is
// not copied into a send buffer. The connection is marked wStaged and the
// drain's flush hands gnet the prepared frames themselves; the loop keeps
// the message in loopState.staged. Fanning a message out to idle
// subscribers, the usual case, thus takes no buffer per subscriber: with
// a copy each, the buffers of a whole drain were live at once and came
// from a pool that every collection empties (~140 B allocated per
// delivery, and the buffers held by the pool after a fan-out to 10,000
// subscribers were ~3.6 MB).
//
// A connection tracked by a shared stream (see stream) is not staged: its
// frames depend on the stream's state when the message is delivered.
//
// One message per drain is staged (the drain's first; a later one is
// queued as before), so that a connection given several in one drain
// still gets them in one write. The mark lives only inside a drain: every
// path that queues data for the connection first puts the staged message
// in the queue (unstageLocked), so a staged connection's queue is empty
// and the staged message is older than anything queued after it.
// PendingBytes does not count a staged message for the rest of its drain.
//
// stageLocked stages pm, of size bytes, for c if it can. c.mu held;
// event-loop only, from a drain.
func (c *Conn) stageLocked(pm *PreparedMessage, size int) bool {
	ls := c.ls
	if c.q.data != nil || size > stageMax || ls.staged != nil && ls.staged != pm ||
		c.policy == uint8(SlowConflate) { // its window is measured on its queue
		return false
	}
	ls.staged = pm
	c.wflags |= wStaged
	return true
}

// stageMax bounds what is staged: a staged message counts in no pending
// figure, so it stays well within sendAllowance.
const stageMax = 16 << 10

// unstageLocked queues c's staged message, if it has one. c.mu held.
func (c *Conn) unstageLocked() {
	if c.wflags&wStaged == 0 {
		return
	}
	c.wflags &^= wStaged
	frames, _ := c.framesOf(c.ls.staged)
	c.q.push(frames, true)
}

// flushTouched flushes the connections the drain has given messages to.
// Event-loop only, between deliveries (a flush may close a connection,
// which must not happen while a topic's subscribers are walked).
func (ls *loopState) flushTouched() {
	ls.flushSoon = false
	for _, c := range ls.touched {
		c.rflags &^= rTouched
		if c.state != stateClosed {
			c.historyDue() // not while walking the wheel
			ls.flushConn(c)
		}
	}
	clear(ls.touched)
	ls.touched = ls.touched[:0]
	ls.staged = nil
}

func (ls *loopState) touch(c *Conn) {
	if c.rflags&rTouched == 0 {
		c.rflags |= rTouched
		ls.touched = append(ls.touched, c)
	}
}

// unqueueKeyLocked removes the queued message with key, if it is still
// wholly in our queue. It reports whether one was removed.
func (c *Conn) unqueueKeyLocked(key string) bool {
	m := c.more()
	if m == nil || m.ix.keys == nil || c.q.data == nil {
		return false
	}
	at, ok := m.ix.pos(key)
	if !ok {
		return false
	}
	delete(m.ix.keys, key)
	if at < int(c.q.head) || at >= len(c.q.data.B) {
		return false // already handed to gnet
	}
	c.q.unqueue(at, &m.ix)
	c.releaseSendHistory()
	return true
}

// replaceKeyLocked puts frames in place of the queued message with key,
// if that is still wholly in our queue. It reports whether it did.
func (c *Conn) replaceKeyLocked(key string, frames []byte) bool {
	m := c.more()
	if m == nil || m.ix.keys == nil || c.q.data == nil {
		return false
	}
	at, ok := m.ix.pos(key)
	if !ok || at < int(c.q.head) || at >= len(c.q.data.B) || m.ix.base+int64(at) < m.ix.fence {
		// unqueueKeyLocked drops a stale entry, and moves a key queued
		// before a written message behind it
		return false
	}
	c.q.replace(at, frames, &m.ix)
	c.releaseSendHistory()
	return true
}

// releaseSendHistory releases the send History after a compressed message
// left the queue unsent: the History would be ahead of the peer's window.
func (c *Conn) releaseSendHistory() {
	if m := c.more(); m != nil && m.dfl != nil {
		m.dfl.send.Release()
	}
}

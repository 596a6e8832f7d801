package wsgate

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/centrifugal/protocol"
)

// joining is one subscription being made by subscribe.
type joining struct {
	name   string
	opts   *ChannelOptions
	req    *protocol.SubscribeRequest
	exp    uint32 // subscription token expiry, Unix s (0: none)
	server bool   // server-side

	ch   *channel
	pubs []*Publication // read for recovery: those after req.Offset, in order
	gone bool           // the read found req's position unrecoverable
	// catching: j counts in ch.catching, and the channel records what
	// it delivers for j meanwhile (channel.recent).
	catching bool
	res      *protocol.SubscribeResult
}

// errClientClosed ends a subscribe whose client closed while it waited
// for the broker: nothing is answered.
var errClientClosed = errors.New("wsgate: client closed")

// errChannelBusy refuses a recovering subscribe whose channel moved on
// during every one of maxReadRounds history reads (a temporary error:
// the SDK tries again).
var errChannelBusy = errors.New("wsgate: channel moved on during every recovery read")

// maxReadRounds bounds the history reads of one subscribe. The first
// read brings the publications up to the channel's offset when it
// began; those the channel delivers meanwhile are recorded for the
// subscribe (channel.recent), so it needs no second read unless more
// than RecoveryMaxPublicationLimit arrived during the first.
const maxReadRounds = 8

// subscribe subscribes c to the channels of js at once: each is
// acquired, its recovery read from history (what the channel delivers
// during the read is recorded for it: catchUp), and then, under the
// channels' locks (taken in name order) and c.mu, each is checked, its
// result set, the engine subscriptions made and write called, so that no
// publication falls between the recovered ones and the live ones, nor
// arrives twice, nor reaches c before write's reply. valid, called there
// too, may refuse. The broker is called with no lock held: with wait, c.mu
// is released around its calls (c's state is checked again after), and
// without it a step that needs the broker is errWait, with nothing done.
// On error nothing is subscribed. c.mu held.
func (n *Node) subscribe(c *session, js []*joining, wait bool, valid func() error, write func()) (err error) {
	slices.SortFunc(js, func(a, b *joining) int { return cmp.Compare(a.name, b.name) })
	defer func() {
		for _, j := range js {
			if j.catching {
				j.ch.mu.Lock()
				if j.ch.catching--; j.ch.catching == 0 {
					j.ch.recent = nil
				}
				j.ch.mu.Unlock()
				j.catching = false
			}
		}
		if err != nil {
			for _, j := range js {
				if j.ch != nil {
					n.release(j.ch)
					j.ch = nil
				}
			}
		}
	}()
	for _, j := range js {
		j.ch, err = n.acquire(j.name, j.opts, false)
		if err == errWait {
			err = c.unlocked(wait, func() (err error) { j.ch, err = n.acquire(j.name, j.opts, true); return err })
		}
		if err != nil {
			return err
		}
	}
	var reads []*joining
	for round := 0; ; round++ {
		for _, j := range js {
			j.ch.mu.Lock()
		}
		reads = reads[:0]
		for _, j := range js {
			if j.ch.lost {
				err = errPositionLost
			}
			catchUp(j)
			if n.needsRead(j) {
				reads = append(reads, j)
				if !j.catching && wait {
					j.catching = true
					j.ch.catching++
				}
			}
		}
		if err == nil && len(reads) == 0 {
			if err = valid(); err == nil {
				err = n.join(c, js, write)
			}
		}
		for _, j := range js {
			j.ch.mu.Unlock()
		}
		switch {
		case err != nil:
			return err
		case len(reads) == 0:
			for _, j := range js {
				c.addSub(sub{ch: j.ch, exp: j.exp, server: j.server})
			}
			c.updateSubExp()
			return nil
		case !wait:
			return errWait
		case round == maxReadRounds:
			return errChannelBusy
		}
		err = c.unlocked(true, func() error {
			for _, j := range reads {
				if err := n.read(j); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

// recovering reports whether j asks to recover from ch's history.
func recovering(o *ChannelOptions, req *protocol.SubscribeRequest) bool {
	return o.history() && (o.ForceRecovery || (o.AllowRecovery && req.Recoverable)) && req.Recover
}

// needsRead reports whether j's recovery needs publications not read
// yet: those up to the channel's delivered offset, when it can recover.
// ch.mu held.
func (n *Node) needsRead(j *joining) bool {
	ch, r := j.ch, j.req
	if !recovering(ch.opts, r) || j.gone || r.Epoch != ch.epoch || r.Offset > ch.top ||
		ch.top-r.Offset > uint64(n.cfg.Client.RecoveryMaxPublicationLimit) {
		return false
	}
	return r.Offset+uint64(len(j.pubs)) < ch.top
}

// catchUp takes from ch.recent the publications after those j has.
// ch.mu held.
func catchUp(j *joining) {
	ch := j.ch
	if !j.catching || j.gone || j.req.Epoch != ch.epoch {
		return
	}
	have := j.req.Offset + uint64(len(j.pubs))
	for _, p := range ch.recent {
		if p.Offset == have+1 {
			j.pubs = append(j.pubs, p)
			have++
		}
	}
}

// read reads from history the publications after those j has; a
// position that history no longer holds, or a read that brings nothing,
// makes j unrecoverable. No lock held.
func (n *Node) read(j *joining) error {
	r := j.req
	have := r.Offset + uint64(len(j.pubs))
	limit := n.cfg.Client.RecoveryMaxPublicationLimit - len(j.pubs)
	pubs, sp, err := n.broker.History(j.name, HistoryOptions{
		Since: &StreamPosition{Offset: have, Epoch: r.Epoch}, Limit: limit, TTL: time.Duration(j.opts.HistoryTTL)})
	if errors.Is(err, ErrUnrecoverablePosition) || (err == nil && sp.Epoch != r.Epoch) {
		j.gone = true
		return nil
	}
	if err != nil {
		return err
	}
	if len(pubs) == 0 || pubs[0].Offset != have+1 {
		j.gone = true
	}
	for _, p := range pubs {
		if p.Offset != have+1 {
			break
		}
		j.pubs = append(j.pubs, p)
		have++
	}
	return nil
}

// join makes js's results and engine subscriptions and calls write:
// every channel's lock held, and c.mu.
func (n *Node) join(c *session, js []*joining, write func()) error {
	for _, j := range js {
		ch, o, req := j.ch, j.ch.opts, j.req
		res := &protocol.SubscribeResult{}
		recoverable := o.history() && (o.ForceRecovery || (o.AllowRecovery && req.Recoverable))
		if o.history() && (recoverable || o.ForcePositioning || (o.AllowPositioning && req.Positioned)) {
			res.Positioned, res.Recoverable = true, recoverable
			res.Epoch, res.Offset = ch.epoch, ch.top
			if recovering(o, req) {
				res.WasRecovering = true
				k := ch.top - req.Offset // publications to recover
				res.Recovered = req.Epoch == ch.epoch && req.Offset <= ch.top && !j.gone &&
					k <= uint64(n.cfg.Client.RecoveryMaxPublicationLimit) && k <= uint64(len(j.pubs))
				if res.Recovered && k > 0 {
					res.Publications = make([]*protocol.Publication, k)
					for i, p := range j.pubs[:k] {
						res.Publications[i] = toProtoPub(p)
					}
				}
			}
		}
		j.res = res
	}
	for i, j := range js {
		if err := n.srv.Subscribe(c.conn, topic(c.proto, j.name)); err != nil {
			for _, k := range js[:i] {
				_ = n.srv.Unsubscribe(c.conn, topic(c.proto, k.name))
				k.ch.n[c.proto]--
			}
			return err
		}
		j.ch.n[c.proto]++
	}
	write()
	return nil
}

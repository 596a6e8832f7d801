package wsgate

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/centrifugal/protocol"
)

// Commands that call the broker run off the event loops.
//
// A client's commands arrive on its connection's event loop (OnMessage),
// which serves thousands of other connections and delivers the node's
// live publications to them: it must not wait for a broker (a JetStream
// read or publish takes a round trip, and up to its request timeout when
// JetStream does not answer). So each command is first run on the loop
// with wait false: a command that needs no broker (ping, refresh,
// sub_refresh, unsubscribe, a subscribe to a channel that exists with
// nothing to recover) is answered there at once, and one that would call
// the broker (publish, history, a subscribe that creates its channel or
// recovers from history, a connect with such server-side subscriptions)
// stops with errWait before it has done anything, and is queued. (With
// a MemoryBroker, whose calls wait on no I/O, it runs on the loop at once
// instead.)
//
// Per client, commands and their replies keep the protocol's order: while
// a client has a queued command, every later command of it is queued
// behind, even one the loop could answer. (An unsubscribe queued so
// leaves the engine topic at once, on the loop, and the rest in order: a
// publication on its way to the loop does not reach the client after it
// sent the unsubscribe.) An /api/subscribe or /api/unsubscribe of a
// client with queued commands comes after them: it is queued behind them
// too (apiRun, apiCallCmd), so that it finds the client as its commands
// leave it (an unsubscribe and a recovering subscribe of the channel,
// sent before, both succeed, and the API call then finds it subscribed),
// and the request is answered at once (a client's queue can wait long
// on the broker). A message that breaks the protocol disconnects the
// client (3501) behind its queued commands, once they are answered
// (badRequest), as Centrifugo runs a client's commands in order and
// stops at the bad one. The queue is the client's sessionExt.cmds,
// allocated when its first command is queued and freed when its last is
// done: an idle client holds nothing for it. It holds at most
// maxQueued(cfg) commands, of maxQueuedBytes(cfg) in all behind the
// running one; a client that sends more is disconnected with 3013 "too
// many requests" (Centrifugo's code for a client sending too many
// commands; it reconnects): an error reply would overtake the replies of
// the commands before it. An API call that finds the queue full passes
// the client over (apiSkipped).
//
// A client with queued commands is run by a worker: one goroutine per
// such client, at most maxWorkers at once; beyond, clients wait in the
// node's run list, oldest first, and a worker takes the next one when its
// client has no command left, or after each command when others wait
// (so one client's queue cannot hold a worker while others wait). An idle
// node has no worker. A worker runs a command under c.mu but releases it
// around each broker call, so c's event loop (OnMessage, OnClose) never
// waits for the broker either; no channel or shard lock is held across a
// broker call (subscribe). A client that the server disconnects
// (session.disconnect: the API, Drain, Shutdown, token expiry, no pong, a
// protocol error) or that closes (OnClose) has its queue dropped at that
// moment: none of its queued commands runs after, it is dropped from the
// run list when a worker reaches it, and a command waiting on the broker
// for it ends there, undoing what it had acquired (a broker call already
// made, such as a publish, is not undone, but its reply is not sent).
// Shutdown waits for the workers (until its context ends).

// maxWorkers caps the goroutines running queued commands. Each waits
// mostly on the broker (a JetStream round trip, 50–100 µs on loopback):
// 64 of them overlap enough round trips for thousands of recovering
// subscribes a second (a dead node's clients arriving), and cost at most
// 64 goroutine stacks while the broker does not answer.
const maxWorkers = 64

// maxQueued is the most commands a client may have queued: a full
// resubscription after a reconnect (one subscribe per channel, up to the
// channel limit), and a batch behind it.
func maxQueued(cfg *Config) int { return cfg.Client.ChannelLimit + cfg.Client.MaxBatchSize }

// maxQueuedBytes bounds the commands a client has queued behind the
// running one, by their encoded size: 1 MiB, or 4 commands of
// max_command_size when that is larger. A full resubscription after a
// reconnect (channel_limit subscribes of a few hundred bytes each, with
// their tokens: 128 KiB or less by default) fits many times over, as do
// 16 publishes of the default 64 KiB; a thousand clients flooding a
// broker that does not answer make the node hold about 1 GiB, not the
// 14 GiB that maxQueued commands of max_command_size each would be.
func maxQueuedBytes(cfg *Config) int { return max(1<<20, 4*cfg.Client.MaxCommandSize) }

// workers is the node's pool of command runners.
type workers struct {
	mu   sync.Mutex
	n    int        // running
	runq []*session // clients waiting for a worker, oldest first
}

// queued reports whether c has commands waiting. c.mu held.
func (c *session) queued() bool { return c.x != nil && len(c.x.cmds) > 0 }

// run runs cmd on c's event loop, or queues it behind c's queued
// commands, or when it needs the broker; false: c was disconnected.
// c.mu held.
func (n *Node) run(c *session, cmd *protocol.Command) bool {
	if c.queued() {
		size := cmd.SizeCF()
		if len(c.x.cmds) >= maxQueued(&n.cfg) || c.x.size+size > maxQueuedBytes(&n.cfg) {
			c.disconnect(disconnectTooMany)
			return false
		}
		c.x.size += size
		if u := cmd.Unsubscribe; u != nil && c.subscribed(u.Channel) >= 0 {
			// The client leaves the engine topic now, on its loop, as an
			// unsubscribe run there does: no publication, even one on its
			// way to the loop, reaches it after this; one published by
			// the commands queued before is returned by a recovering
			// subscribe instead. The rest is done in order.
			n.srv.UnsubscribeOnLoop(c.conn, topic(c.proto, u.Channel))
		}
		c.x.cmds = append(c.x.cmds, cmd)
		return true
	}
	err := n.handle(c, cmd, false, false)
	if err == errWait && n.inline {
		// A MemoryBroker's calls take microseconds and wait on no I/O:
		// run on the loop, they save the hand-off to a worker and back
		// (BenchmarkClientPublish, a client's publish round trip on a
		// shared 2-core machine: 34-65 µs on the loop, 73-134 µs
		// through a worker).
		err = n.handle(c, cmd, true, true)
	}
	if err == errWait {
		if c.x == nil {
			c.x = new(sessionExt)
		}
		c.x.cmds, c.x.counted = append(c.x.cmds, cmd), true
		n.schedule(c)
		return true
	}
	if d, ok := err.(disconnect); ok {
		c.disconnect(d)
		return false
	}
	return true
}

// badRequestCmd, queued, disconnects its client with 3501 "bad
// request" when a worker reaches it.
var badRequestCmd = new(protocol.Command)

// badRequest disconnects c with 3501 "bad request" for a message that
// breaks the protocol, after c's queued commands, as Centrifugo, which
// runs a client's commands in order and stops at the bad one: the
// replies of the commands before it go first. A client whose
// disconnect is so queued runs no later command (OnMessage). c.mu held.
func (n *Node) badRequest(c *session) {
	if !c.queued() {
		c.disconnect(disconnectBadRequest)
		return
	}
	c.x.cmds = append(c.x.cmds, badRequestCmd)
}

// apiCallCmd marks, in a client's queue, an API call queued behind its
// commands; c.x.calls holds those calls in the same order.
var apiCallCmd = new(protocol.Command)

// errQueueFull is apiRun's answer for a client whose queue is full.
var errQueueFull = errors.New("wsgate: client's command queue is full")

// apiRun runs f for c now, when c has no command queued; else it queues
// f behind c's commands, so that it runs after them, as the API request
// comes after them, and the request is answered at once (run so, f's
// error other than a skip is logged). A client whose queue is full
// (maxQueued) gets errQueueFull, logged here, and f does not run: the
// queue stays bounded.
// c.mu held; f runs with c.mu held and may release it around broker
// calls.
func (n *Node) apiRun(c *session, f func() error) error {
	if !c.queued() {
		return f()
	}
	if c.x.cmds[len(c.x.cmds)-1] == badRequestCmd {
		return errClientClosed // disconnected once its queue is done
	}
	if len(c.x.cmds) >= maxQueued(&n.cfg) {
		n.log.Warn("api call passed over a client whose command queue is full", "client", c.id(n))
		return errQueueFull
	}
	c.x.cmds = append(c.x.cmds, apiCallCmd)
	c.x.calls = append(c.x.calls, f)
	return nil
}

// schedule gives c to a worker, or to the run list when all are busy.
func (n *Node) schedule(c *session) {
	n.work.mu.Lock()
	if n.work.n == maxWorkers {
		n.work.runq = append(n.work.runq, c)
		n.work.mu.Unlock()
		return
	}
	n.work.n++
	n.work.mu.Unlock()
	go n.worker(c)
}

// worker runs the queued commands of c, then of the clients in the run
// list, until it is empty.
func (n *Node) worker(c *session) {
	for {
		more := n.runOne(c)
		n.work.mu.Lock()
		if more {
			n.work.runq = append(n.work.runq, c)
		}
		if len(n.work.runq) == 0 {
			n.work.n--
			n.work.mu.Unlock()
			return
		}
		c = n.work.runq[0]
		n.work.runq[0] = nil
		n.work.runq = n.work.runq[1:]
		if len(n.work.runq) == 0 {
			n.work.runq = nil
		}
		n.work.mu.Unlock()
	}
}

// runOne runs c's first queued command and reports whether c has more.
func (n *Node) runOne(c *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.queued() {
		return false // closed or disconnected: the queue was dropped
	}
	cmd, counted := c.x.cmds[0], c.x.counted
	if cmd == badRequestCmd {
		c.disconnect(disconnectBadRequest) // drops the queue
		return false
	}
	c.x.counted = false
	var err error
	if cmd == apiCallCmd {
		f := c.x.calls[0]
		c.x.calls[0] = nil
		c.x.calls = c.x.calls[1:]
		if err := f(); err != nil && !apiSkipped(err) {
			n.log.Warn("queued api call", "client", c.id(n), "err", err)
		}
	} else {
		err = n.handle(c, cmd, true, counted)
	}
	if !c.queued() {
		return false // closed or disconnected meanwhile
	}
	if d, ok := err.(disconnect); ok {
		c.disconnect(d) // drops the queue: nothing more runs
		return false
	}
	c.x.cmds[0] = nil
	c.x.cmds = c.x.cmds[1:]
	if len(c.x.cmds) > 0 {
		c.x.size -= c.x.cmds[0].SizeCF() // it is running now
	} else {
		c.x.cmds, c.x.calls, c.x.size = nil, nil, 0
		c.trimExt()
		return false
	}
	return true
}

// waitWorkers waits until no worker runs, or ctx ends.
func (n *Node) waitWorkers(ctx context.Context) error {
	for {
		n.work.mu.Lock()
		busy := n.work.n
		n.work.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(drainTick):
		}
	}
}

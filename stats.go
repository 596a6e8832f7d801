package wsgate

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/loop"
)

// DurationBuckets are the upper bounds of the duration histograms in
// Stats, shortest first.
var DurationBuckets = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	time.Second, 5 * time.Second,
}

// Histogram is a snapshot of a duration histogram.
type Histogram struct {
	// Buckets[i] counts the observations of at most DurationBuckets[i]
	// (cumulative: Buckets never decreases with i).
	Buckets [len(DurationBuckets)]uint64
	Count   uint64        // all observations, the ones above the last bound included
	Sum     time.Duration // of all observations
}

// Command methods of the client protocol, as labels of Stats.Commands.
var commandMethods = [...]string{"connect", "subscribe", "unsubscribe", "publish", "history",
	"refresh", "sub_refresh", "ping", "presence", "presence_stats", "rpc", "send"}

const (
	cmdConnect = iota
	cmdSubscribe
	cmdUnsubscribe
	cmdPublish
	cmdHistory
	cmdRefresh
	cmdSubRefresh
	cmdPing
	cmdPresence
	cmdPresenceStats
	cmdRPC
	cmdSend
	cmdNone = -1 // a pong, or a command that is no method
)

// apiMethods are the server API methods, as labels of Stats.API.
var apiMethods = [...]string{"publish", "broadcast", "history", "history_remove", "info", "channels",
	"disconnect", "unsubscribe", "subscribe", "batch"}

// Sources of publications in Stats.Publications.
const (
	SourceAPI    = "api"    // the server API published it
	SourceClient = "client" // a client's publish command published it
	SourceBroker = "broker" // the broker delivered it to a channel with subscribers on this node
)

// Stats is a snapshot of a node's counters: the engine's, and the
// gateway's. Connects, Disconnects, Commands, API, Publications and
// BrokerPublish only grow; Conns, Clients, Channels and the History
// figures are current values.
type Stats struct {
	// Server are the engine's counters: bytes and messages in and out,
	// subscriptions, slow-consumer actions, refused handshakes by HTTP
	// status, close frames by code.
	Server loop.Stats

	Conns    int64 // upgraded WebSocket connections
	Clients  int64 // connections that completed the protocol's connect
	Channels int64 // channels with subscribers on this node
	Connects int64 // successful connect commands

	// Disconnects counts closed WebSocket connections by close code: the
	// code of the close frame that came first (ours or the peer's), 1006
	// when the connection ended without one.
	Disconnects map[uint16]int64
	// Commands are the durations of the client commands by method
	// (connect, subscribe, publish, …); pongs are not counted.
	Commands map[string]Histogram
	// API are the durations of the server API requests by method
	// (publish, broadcast, …, batch), from the request's arrival to the
	// written reply.
	API map[string]Histogram
	// Publications counts publications by source: SourceAPI and
	// SourceClient were handed to the broker, SourceBroker came from it.
	Publications map[string]int64
	// BrokerPublish are the durations of Broker.Publish calls.
	BrokerPublish Histogram

	// HistoryPublications and HistoryBytes are the size of the history
	// the broker keeps (publications, and bytes of their data), or -1
	// when the broker does not implement HistorySizer.
	HistoryPublications int64
	HistoryBytes        int64
}

// HistorySizer is an optional interface of a Broker: it tells the size
// of the history it keeps, for Node.Stats.
type HistorySizer interface {
	// HistorySize returns the publications held in history and the
	// bytes of their data.
	HistorySize() (publications, bytes int64, err error)
}

// statShards is the number of shards of a node's counters. Events are
// counted in one shard, picked by client number or at random, so that
// event loops and API goroutines rarely write the same cache line; Stats
// sums the shards.
const statShards = 16

type nodeStats struct {
	shards [statShards]statShard
}

type statShard struct {
	connects  atomic.Int64
	published [3]atomic.Int64 // by source: pubAPI, pubClient, pubBroker
	cmds      [len(commandMethods)]hist
	api       [len(apiMethods)]hist
	brokerPub hist
	_         [64]byte // keeps the next shard's first counters off this one's last cache line
}

const (
	pubAPI = iota
	pubClient
	pubBroker
)

var pubSources = [...]string{pubAPI: SourceAPI, pubClient: SourceClient, pubBroker: SourceBroker}

// shard returns the shard of client number k.
func (s *nodeStats) shard(k uint64) *statShard { return &s.shards[k%statShards] }

// random returns a shard for an event of no client: a random one.
func (s *nodeStats) random() *statShard { return &s.shards[rand.Uint64()%statShards] }

// hist is one shard of a duration histogram.
type hist struct {
	counts [len(DurationBuckets) + 1]atomic.Uint64 // per bucket, not cumulative; the last: above every bound
	sum    atomic.Int64                            // nanoseconds
}

func (h *hist) observe(d time.Duration) {
	i := 0
	for i < len(DurationBuckets) && d > DurationBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// addTo adds the shard to the snapshot out (Buckets not yet cumulative).
func (h *hist) addTo(out *Histogram) {
	for i := range h.counts {
		c := h.counts[i].Load()
		if i < len(out.Buckets) {
			out.Buckets[i] += c
		}
		out.Count += c
	}
	out.Sum += time.Duration(h.sum.Load())
}

func cumulate(h *Histogram) {
	for i := 1; i < len(h.Buckets); i++ {
		h.Buckets[i] += h.Buckets[i-1]
	}
}

// Stats returns a snapshot of the node's counters. It reads per-loop and
// sharded counters: its cost grows with the number of channels (and
// event loops), not with traffic. Safe from any goroutine.
func (n *Node) Stats() Stats {
	st := Stats{
		Server:              n.srv.Stats(),
		Conns:               int64(n.srv.Conns()),
		Clients:             n.nconn.Load(),
		Channels:            int64(n.NumChannels()),
		Disconnects:         map[uint16]int64{},
		Commands:            make(map[string]Histogram, len(commandMethods)),
		API:                 make(map[string]Histogram, len(apiMethods)),
		Publications:        make(map[string]int64, len(pubSources)),
		HistoryPublications: -1,
		HistoryBytes:        -1,
	}
	var cmds [len(commandMethods)]Histogram
	var api [len(apiMethods)]Histogram
	var pubs [len(pubSources)]int64
	for i := range n.stats.shards {
		sh := &n.stats.shards[i]
		st.Connects += sh.connects.Load()
		for j := range pubs {
			pubs[j] += sh.published[j].Load()
		}
		for j := range cmds {
			sh.cmds[j].addTo(&cmds[j])
		}
		for j := range api {
			sh.api[j].addTo(&api[j])
		}
		sh.brokerPub.addTo(&st.BrokerPublish)
	}
	cumulate(&st.BrokerPublish)
	for j, m := range commandMethods {
		cumulate(&cmds[j])
		st.Commands[m] = cmds[j]
	}
	for j, m := range apiMethods {
		cumulate(&api[j])
		st.API[m] = api[j]
	}
	for j, s := range pubSources {
		st.Publications[s] = pubs[j]
	}
	for i := range n.clients {
		sh := &n.clients[i]
		sh.mu.Lock()
		for code, k := range sh.disconnects {
			st.Disconnects[code] += k
		}
		sh.mu.Unlock()
	}
	if hs, ok := n.broker.(HistorySizer); ok {
		if p, b, err := hs.HistorySize(); err == nil {
			st.HistoryPublications, st.HistoryBytes = p, b
		}
	}
	return st
}

// closeCode is the close code a connection ended with, from the error
// OnClose got.
func closeCode(err error) uint16 {
	var ce *loop.CloseError
	if errors.As(err, &ce) {
		return uint16(ce.Code)
	}
	return 1006
}

// brokerPublish is Broker.Publish, timed, and counted for source.
func (n *Node) brokerPublish(source int, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	start := time.Now()
	sp, err := n.broker.Publish(channel, data, opts)
	sh := n.stats.random()
	sh.brokerPub.observe(time.Since(start))
	if err == nil && source >= 0 {
		sh.published[source].Add(1)
	}
	return sp, err
}

// HistorySize implements HistorySizer.
func (b *MemoryBroker) HistorySize() (publications, bytes int64, err error) {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for _, s := range sh.streams {
			s.mu.Lock()
			publications += int64(len(s.pubs))
			s.mu.Unlock()
		}
		sh.mu.Unlock()
	}
	return publications, b.bytes.Load(), nil
}

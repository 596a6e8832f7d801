package wsgate

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Publication is one message of a channel.
type Publication struct {
	// Offset is the publication's position in its channel's stream: it
	// increases by exactly one per publication of a channel with history,
	// and is 0 for a channel without history.
	Offset uint64
	Data   []byte
	Info   *ClientInfo // the publishing client, if a client published
	Tags   map[string]string
	Time   int64 // Unix milliseconds
}

// ClientInfo describes the client that published.
type ClientInfo struct {
	User     string
	Client   string
	ConnInfo []byte
}

// StreamPosition is a position in a channel's stream: the offset of the
// last publication and the stream's epoch. A new epoch means the stream
// was lost and offsets started again.
type StreamPosition struct {
	Offset uint64
	Epoch  string
}

// PublishOptions go with Broker.Publish.
type PublishOptions struct {
	// HistorySize and HistoryTTL: with both positive the publication is
	// kept in the channel's history (the last HistorySize publications no
	// older than HistoryTTL) and gets the next offset.
	HistorySize int
	HistoryTTL  time.Duration
	// IdempotencyKey, if set, makes a second publish with the same key
	// within IdempotentResultTTL return the first one's position without
	// publishing again.
	IdempotencyKey string
	Info           *ClientInfo
	Tags           map[string]string
}

// HistoryOptions go with Broker.History.
type HistoryOptions struct {
	// Since, if set, asks for the publications after this position; an
	// epoch that is not the stream's, or an offset whose successor is no
	// longer held, gives ErrUnrecoverablePosition with the stream's
	// current position.
	Since *StreamPosition
	// Limit is the most publications returned: 0 returns none (only the
	// position), negative returns all.
	Limit   int
	Reverse bool
	// TTL is the channel's history TTL: older publications are not
	// returned.
	TTL time.Duration
}

// BrokerHandler receives the publications of the channels a node
// subscribed to, per channel in offset order.
type BrokerHandler interface {
	HandlePublication(channel string, pub *Publication, sp StreamPosition)
}

// Broker carries publications between nodes and keeps channel history.
// A node calls Subscribe for a channel when it gets its first local
// subscriber and Unsubscribe after the last; the broker then calls the
// handler for every publication of the channel, from any node, in offset
// order (duplicates are allowed: the node drops publications at or below
// the offset it has delivered). Implementations are safe for concurrent
// use.
type Broker interface {
	// Run starts delivering to h.
	Run(h BrokerHandler) error
	// Publish publishes data to channel, assigning the next offset when
	// opts ask for history, and returns the channel's position after it.
	Publish(channel string, data []byte, opts PublishOptions) (StreamPosition, error)
	// History returns publications of channel and its current position.
	History(channel string, opts HistoryOptions) ([]*Publication, StreamPosition, error)
	// RemoveHistory drops channel's publications (its position stays).
	RemoveHistory(channel string) error
	// Subscribe and Unsubscribe tell the broker which channels this node
	// has subscribers for.
	Subscribe(channel string) error
	Unsubscribe(channel string) error
}

// ErrUnrecoverablePosition is returned by Broker.History when the
// publications after HistoryOptions.Since are no longer all held.
var ErrUnrecoverablePosition = errors.New("wsgate: unrecoverable position")

// IdempotentResultTTL is how long MemoryBroker remembers an idempotency
// key.
const IdempotentResultTTL = 5 * time.Minute

// MemoryBroker is the Broker of a single node: history lives in this
// process. Publications are delivered to the handler synchronously, for
// every channel (the node ignores channels without local subscribers).
type MemoryBroker struct {
	h        BrokerHandler
	maxBytes int64
	bytes    atomic.Int64 // of the publications in history
	pubs     atomic.Int64 // publications in history
	seed     maphash.Seed
	shards   [64]memShard

	idemKeys [64]sync.Mutex // by the key's hash: held from check to remember
	idem     IdempotencyCache

	expireNext atomic.Int64 // Unix s of the next pass over idle streams
}

// StreamMetaTTL is how long MemoryBroker keeps the position (epoch and
// offset) of a channel whose history has emptied (its publications aged
// out or were removed) and that nobody published to: after it, the
// stream is dropped and the channel starts again with a new epoch.
const StreamMetaTTL = 24 * time.Hour

type memShard struct {
	mu      sync.Mutex
	streams map[string]*memStream
}

// memStream is one channel's stream. deliver serialises publish and
// delivery so that the handler sees offsets in order; mu guards the
// history and is never held while calling out.
type memStream struct {
	deliver sync.Mutex
	mu      sync.Mutex
	epoch   string
	top     uint64
	pubs    []*Publication // oldest first
	bytes   int64
	ttl     time.Duration // the history TTL of the last publish
	used    int64         // Unix s of the last publish, or of creation
	dropped bool          // removed from the broker by expire
}

// NewMemoryBroker returns a broker whose histories hold at most maxBytes
// of publication data in total (0: DefaultMaxHistoryBytes).
func NewMemoryBroker(maxBytes int64) *MemoryBroker {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHistoryBytes
	}
	return &MemoryBroker{maxBytes: maxBytes, seed: maphash.MakeSeed()}
}

// Run implements Broker.
func (b *MemoryBroker) Run(h BrokerHandler) error { b.h = h; return nil }

// Subscribe implements Broker; every channel is delivered anyway.
func (b *MemoryBroker) Subscribe(string) error { return nil }

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(string) error { return nil }

func (b *MemoryBroker) stream(channel string, create bool) *memStream {
	sh := &b.shards[maphash.String(b.seed, channel)%uint64(len(b.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.streams[channel]
	if s == nil && create {
		channel = strings.Clone(channel) // the caller's may point into a reused buffer
		s = &memStream{epoch: newEpoch(), used: time.Now().Unix()}
		if sh.streams == nil {
			sh.streams = map[string]*memStream{}
		}
		sh.streams[channel] = s
	}
	return s
}

func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Publish implements Broker.
func (b *MemoryBroker) Publish(channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	now := time.Now()
	if k := opts.IdempotencyKey; k != "" {
		// Check, publish and remember under the key's lock: concurrent
		// publishes with one key publish once.
		mu := &b.idemKeys[maphash.String(b.seed, k)%uint64(len(b.idemKeys))]
		mu.Lock()
		defer mu.Unlock()
		if sp, ok := b.idem.Lookup(k, now); ok {
			return sp, nil
		}
	}
	pub := &Publication{Data: data, Info: opts.Info, Tags: opts.Tags, Time: now.UnixMilli()}
	var sp StreamPosition
	history := opts.HistorySize > 0 && opts.HistoryTTL > 0
	if !history {
		if b.h != nil {
			b.h.HandlePublication(channel, pub, sp)
		}
	} else {
		s := b.stream(channel, true)
		s.deliver.Lock()
		s.mu.Lock()
		for s.dropped {
			// expire removed it in the meantime: use the new one.
			s.mu.Unlock()
			s.deliver.Unlock()
			s = b.stream(channel, true)
			s.deliver.Lock()
			s.mu.Lock()
		}
		s.top++
		pub.Offset = s.top
		s.pubs = append(s.pubs, pub)
		s.bytes += int64(len(data))
		b.bytes.Add(int64(len(data)))
		b.pubs.Add(1)
		s.ttl, s.used = opts.HistoryTTL, now.Unix()
		s.trim(b, opts.HistorySize, now.Add(-opts.HistoryTTL).UnixMilli())
		for b.bytes.Load() > b.maxBytes && len(s.pubs) > 0 {
			s.drop(b)
		}
		sp = StreamPosition{Offset: s.top, Epoch: s.epoch}
		s.mu.Unlock()
		if b.h != nil {
			b.h.HandlePublication(channel, pub, sp)
		}
		s.deliver.Unlock()
	}
	if opts.IdempotencyKey != "" {
		b.idem.Remember(opts.IdempotencyKey, sp, now)
	}
	if next := b.expireNext.Load(); now.Unix() >= next && b.expireNext.CompareAndSwap(next, now.Unix()+60) {
		b.expire(now)
	}
	return sp, nil
}

// expire ages out the publications of every stream and drops the streams
// left empty and unused for StreamMetaTTL, so that channels nobody
// publishes to any more cost nothing. It runs at most once a minute.
func (b *MemoryBroker) expire(now time.Time) {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for name, s := range sh.streams {
			s.mu.Lock()
			if s.ttl > 0 {
				s.trim(b, len(s.pubs), now.Add(-s.ttl).UnixMilli())
			}
			if len(s.pubs) == 0 && now.Unix()-s.used > int64(StreamMetaTTL/time.Second) {
				delete(sh.streams, name)
				s.dropped = true
			}
			s.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// trim drops publications beyond size or older than minTime. s.mu held.
func (s *memStream) trim(b *MemoryBroker, size int, minTime int64) {
	for len(s.pubs) > size || (len(s.pubs) > 0 && s.pubs[0].Time < minTime) {
		s.drop(b)
	}
}

func (s *memStream) drop(b *MemoryBroker) {
	n := int64(len(s.pubs[0].Data))
	s.pubs[0] = nil
	s.pubs = s.pubs[1:]
	s.bytes -= n
	b.bytes.Add(-n)
	b.pubs.Add(-1)
	if len(s.pubs) == 0 {
		s.pubs = nil
	}
}

// History implements Broker.
func (b *MemoryBroker) History(channel string, opts HistoryOptions) ([]*Publication, StreamPosition, error) {
	s := b.stream(channel, opts.Since != nil || opts.Limit != 0)
	if s == nil {
		// A channel never published to: create it so that its epoch is
		// fixed from now on.
		s = b.stream(channel, true)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if opts.TTL > 0 {
		s.trim(b, len(s.pubs), time.Now().Add(-opts.TTL).UnixMilli())
	}
	sp := StreamPosition{Offset: s.top, Epoch: s.epoch}
	pubs := s.pubs
	if opts.Since != nil {
		if opts.Since.Epoch != "" && opts.Since.Epoch != s.epoch {
			return nil, sp, ErrUnrecoverablePosition
		}
		next := opts.Since.Offset + 1
		if opts.Since.Offset > s.top {
			return nil, sp, ErrUnrecoverablePosition
		}
		if next <= s.top {
			if len(pubs) == 0 || pubs[0].Offset > next {
				return nil, sp, ErrUnrecoverablePosition
			}
			pubs = pubs[next-pubs[0].Offset:]
		} else {
			pubs = nil
		}
	}
	if opts.Limit >= 0 && len(pubs) > opts.Limit {
		if opts.Reverse {
			pubs = pubs[len(pubs)-opts.Limit:]
		} else {
			pubs = pubs[:opts.Limit]
		}
	}
	out := make([]*Publication, len(pubs))
	copy(out, pubs)
	if opts.Reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, sp, nil
}

// RemoveHistory implements Broker.
func (b *MemoryBroker) RemoveHistory(channel string) error {
	s := b.stream(channel, false)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pubs) > 0 {
		s.drop(b)
	}
	return nil
}

package natsbroker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate"
)

// Options configure a Broker.
type Options struct {
	// URL of the NATS server(s), comma-separated; default nats.DefaultURL.
	URL string
	// Name is the node's name, sent as the NATS connection name.
	Name string
	// Stream is the JetStream stream holding history; default "WSGATE".
	Stream string
	// Prefix starts every subject the broker uses; default "wsgate".
	Prefix string
	// MaxHistorySize is the most publications JetStream keeps per channel
	// (the largest history_size of the configuration); default 1000.
	// A channel's own, smaller size is applied when reading.
	MaxHistorySize int
	// MaxAge is how long JetStream keeps a publication, and so how long a
	// channel that nobody publishes to keeps its position (offset and
	// epoch); default 24 h. A channel's own, shorter TTL is applied when
	// reading.
	MaxAge time.Duration
	// Replicas of the stream; default 1.
	Replicas int
	// MemoryStorage keeps the stream in the NATS server's memory instead
	// of files: a NATS restart then loses every channel's history (and
	// changes the epochs).
	MemoryStorage bool
	// Timeout of one JetStream request; default 2 s.
	Timeout time.Duration
	// PingInterval is how often the connection to NATS is checked; with
	// two pings unanswered it is taken as lost and made again (the
	// node then catches up). Default 2 s: a link gone silent is noticed
	// in about 6 s (nats.go's own default, 2 minutes, took 4 to 6).
	PingInterval time.Duration
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// ErrTooLarge is returned by Publish for a publication (data and
// headers) larger than the NATS server's max_payload.
var ErrTooLarge = errors.New("natsbroker: publication larger than NATS max_payload")

// headerRoom is the room left in a message for the headers added after
// the size check (offset, epoch, sequences, message id).
const headerRoom = 512

// msgSize is an upper bound of m's size on the wire once the broker has
// added its position headers.
func msgSize(m *nats.Msg) int64 {
	n := len(m.Subject) + len(m.Data) + headerRoom
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// ErrNotConnected is returned by Publish and History while the broker has
// no connection to NATS.
var ErrNotConnected = errors.New("natsbroker: not connected to NATS")

// Broker is a wsgate.Broker over NATS: publications travel on core NATS
// subjects, one subscription per channel with local subscribers, and
// history with offsets and epochs lives in a JetStream stream. See the
// package documentation for the design.
type Broker struct {
	o    Options
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	seed maphash.Seed

	h       wsgate.BrokerHandler // set once by Run, before running
	running atomic.Bool
	in      chan *nats.Msg // live publications of every subscribed channel

	subMu sync.Mutex
	subs  map[string]*nats.Subscription

	// locks serialise this node's appends to one channel; tops caches
	// the last message of channels this node appended to.
	locks [256]sync.Mutex
	topMu sync.Mutex
	tops  map[string]top

	streamMu sync.Mutex
	stream   jetstream.Stream

	idem wsgate.IdempotencyCache

	ctl control

	// lag holds the channels whose last publication this node may not
	// have been handed: NATS dropped live messages for it (slow
	// consumer), it was disconnected, or one of its publishes got no
	// answer (stored or not). The value is true for the latter: the other
	// nodes may not have had it live either. The dispatch goroutine
	// catches them up when its queue is empty (see catchUp).
	lagMu sync.Mutex
	lag   map[string]bool
	kick  chan struct{}

	closed chan struct{}
	done   chan struct{}
}

// top is the last message of a channel's history subject: its stream
// sequence, the channel offset and epoch it carries.
type top struct {
	seq    uint64
	offset uint64
	epoch  string
}

// maxTops bounds the cache of channel tops; it is emptied when full (the
// tops are read again from JetStream on the next append).
const maxTops = 1 << 16

// inboxSize is the capacity of the queue between NATS and the handler.
// When it is full NATS drops messages for this node; the node fills the
// gap from history when the next publication of the channel arrives.
const inboxSize = 1 << 14

// Message headers.
const (
	hdrOffset   = "Wsgate-Offset"
	hdrEpoch    = "Wsgate-Epoch"
	hdrPrev     = "Wsgate-Prev" // stream sequence of the channel's previous message
	hdrSeq      = "Wsgate-Seq"  // live messages: the stream sequence the publication got
	hdrSize     = "Wsgate-Size" // the channel's history size
	hdrTime     = "Wsgate-Time" // Unix ms
	hdrKind     = "Wsgate-Kind" // "position": a marker that holds a position, no publication
	hdrUser     = "Wsgate-User"
	hdrClient   = "Wsgate-Client"
	hdrConnInfo = "Wsgate-Conn-Info" // base64
	hdrTags     = "Wsgate-Tags"      // JSON object
	kindPos     = "position"
)

// New connects to NATS and returns a broker. The connection is retried
// in the background when NATS is down at start or later: until it is up,
// Ready returns an error and publishing to other nodes fails.
func New(o Options) (*Broker, error) {
	if o.URL == "" {
		o.URL = nats.DefaultURL
	}
	if o.Stream == "" {
		o.Stream = "WSGATE"
	}
	if o.Prefix == "" {
		o.Prefix = "wsgate"
	}
	if o.MaxHistorySize <= 0 {
		o.MaxHistorySize = 1000
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 2 * time.Second
	}
	b := &Broker{o: o, log: o.Logger, seed: maphash.MakeSeed(), in: make(chan *nats.Msg, inboxSize),
		subs: map[string]*nats.Subscription{}, tops: map[string]top{}, lag: map[string]bool{},
		kick: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.Default()
	}
	nc, err := nats.Connect(o.URL,
		nats.Name(o.Name),
		nats.NoEcho(), // a node delivers its own publications itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectBufSize(-1), // no buffering while down: publishes fail at once
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			b.log.Info("nats reconnected")
			b.resync()
		}),
		nats.ConnectHandler(func(*nats.Conn) {
			b.log.Info("nats connected")
			b.resync()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			if s != nil && errors.Is(err, nats.ErrSlowConsumer) && strings.HasPrefix(s.Subject, b.o.Prefix+".l.") {
				// Live messages of the channel were dropped: the last one
				// makes the node fill them from history.
				if c, ok := b.channelOf(s.Subject); ok {
					b.behind(c, false)
				}
			}
			b.log.Warn("nats", "err", err)
		}),
	)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, err
	}
	if nc.IsConnected() {
		if _, err := b.ensureStream(); err != nil {
			b.log.Warn("jetstream stream not ready", "stream", o.Stream, "err", err)
		}
	}
	return b, nil
}

// Close closes the NATS connection and stops delivering.
func (b *Broker) Close() {
	select {
	case <-b.closed:
		return
	default:
	}
	close(b.closed)
	b.nc.Close()
	if b.running.Load() {
		<-b.done
	}
}

// Conn returns the broker's NATS connection.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Ready returns nil when the broker is connected to NATS and its stream
// answers, else the reason it is not.
func (b *Broker) Ready() error {
	if !b.nc.IsConnected() {
		return ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	_, err := b.js.Stream(ctx, b.o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.ensureStream()
	}
	return err
}

// Run implements wsgate.Broker: it starts the goroutine that hands live
// publications to h, one at a time, in the order NATS delivered them.
func (b *Broker) Run(h wsgate.BrokerHandler) error {
	b.h = h
	b.running.Store(true)
	go b.dispatch()
	return nil
}

func (b *Broker) dispatch() {
	defer close(b.done)
	pending := false
	for {
		if pending && len(b.in) == 0 {
			pending = false
			b.catchUp()
		}
		select {
		case <-b.closed:
			return
		case <-b.kick:
			pending = true
		case m := <-b.in:
			channel, ok := b.channelOf(m.Subject)
			if !ok {
				continue
			}
			pub, sp, kind, err := decode(m.Header, m.Data)
			if err != nil || kind == kindPos {
				b.log.Warn("bad message", "subject", m.Subject, "err", err)
				continue
			}
			if seq, _ := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64); seq > 0 {
				b.observe(channel, top{seq: seq, offset: sp.Offset, epoch: sp.Epoch})
			}
			b.h.HandlePublication(channel, pub, sp)
		}
	}
}

// Subscribe implements wsgate.Broker: one NATS subscription for the
// channel, flushed (one round trip) so that NATS has it before the node
// reads the channel's position. It succeeds while NATS is down; the
// subscription is made when the connection comes back.
func (b *Broker) Subscribe(channel string) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if b.subs[channel] != nil {
		return nil
	}
	s, err := b.nc.ChanSubscribe(b.liveSubject(channel), b.in)
	if err != nil {
		return err
	}
	b.subs[strings.Clone(channel)] = s
	if b.nc.IsConnected() {
		// Once NATS has the subscription, every publication stored after
		// the node reads the channel's position reaches the node live.
		_ = b.nc.FlushTimeout(b.o.Timeout)
	}
	return nil
}

// Unsubscribe implements wsgate.Broker.
func (b *Broker) Unsubscribe(channel string) error {
	b.subMu.Lock()
	s := b.subs[channel]
	delete(b.subs, channel)
	b.subMu.Unlock()
	if s == nil {
		return nil
	}
	return s.Unsubscribe()
}

// resync runs after a (re)connection: every subscribed channel is
// caught up (see catchUp), so that the node fills from history what it
// missed while NATS was away.
func (b *Broker) resync() {
	b.subMu.Lock()
	b.lagMu.Lock()
	for c := range b.subs {
		if _, ok := b.lag[c]; !ok {
			b.lag[c] = false
		}
	}
	b.lagMu.Unlock()
	b.subMu.Unlock()
	b.kickNow()
}

// behind marks channel for catching up; live: its last publication is
// also published again on the live subject, for the other nodes.
func (b *Broker) behind(channel string, live bool) {
	b.lagMu.Lock()
	b.lag[strings.Clone(channel)] = b.lag[channel] || live
	b.lagMu.Unlock()
	b.kickNow()
}

func (b *Broker) kickNow() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// catchUpBatch is how many channels catchUp reads before the dispatch
// goroutine looks at its queue again.
const catchUpBatch = 64

// catchUp hands the last stored publication of lagging channels to the
// handler, which fills what the node missed from history (or drops it
// if nothing was), and publishes it again live where the other nodes may
// not have had it. It runs on the dispatch goroutine when its queue is
// empty: a catch-up read after the last live message NATS dropped for
// the node sees that message stored (it is stored before it is published
// live). A channel whose read fails stays lagging: it is tried again a
// second later, or at the next reconnection.
func (b *Broker) catchUp() {
	if !b.nc.IsConnected() {
		return // resync catches everything up on reconnection
	}
	b.lagMu.Lock()
	batch := make(map[string]bool, min(len(b.lag), catchUpBatch))
	for c, live := range b.lag {
		if len(batch) == catchUpBatch {
			break
		}
		batch[c] = live
		delete(b.lag, c)
	}
	more := len(b.lag) > 0
	b.lagMu.Unlock()
	failed := false
	for c, live := range batch {
		b.subMu.Lock()
		sub := b.subs[c] != nil
		b.subMu.Unlock()
		if !sub && !live {
			continue
		}
		m, err := b.last(c)
		if err != nil {
			b.lagMu.Lock()
			b.lag[c] = b.lag[c] || live
			b.lagMu.Unlock()
			failed = true
			continue
		}
		if m == nil {
			continue
		}
		pub, sp, kind, err := decode(m.Header, m.Data)
		if err != nil || kind == kindPos || pub.Offset == 0 {
			continue
		}
		if live {
			lm := nats.NewMsg(b.liveSubject(c))
			lm.Data = m.Data
			for k, v := range m.Header {
				if !strings.HasPrefix(k, "Nats-") {
					lm.Header[k] = v
				}
			}
			lm.Header.Set(hdrSeq, strconv.FormatUint(m.Sequence, 10))
			_ = b.nc.PublishMsg(lm)
		}
		if sub {
			b.h.HandlePublication(c, pub, sp)
		}
	}
	if more {
		b.kickNow()
	}
	if failed {
		time.AfterFunc(time.Second, b.kickNow)
	}
}

// Subjects: a channel name becomes one subject token in unpadded
// URL-safe base64, so that any name is a valid token.
func (b *Broker) liveSubject(channel string) string {
	return b.o.Prefix + ".l." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

func (b *Broker) historySubject(channel string) string {
	return b.o.Prefix + ".h." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

func (b *Broker) channelOf(subject string) (string, bool) {
	i := strings.LastIndexByte(subject, '.')
	c, err := base64.RawURLEncoding.DecodeString(subject[i+1:])
	return string(c), err == nil
}

// ensureStream creates the history stream or updates its limits.
func (b *Broker) ensureStream() (jetstream.Stream, error) {
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	storage := jetstream.FileStorage
	if b.o.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.o.Stream,
		Description: "wsgate channel history",
		Subjects:    []string{b.o.Prefix + ".h.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		// One more than the history: a position marker may be the last.
		MaxMsgsPerSubject: int64(b.o.MaxHistorySize) + 1,
		MaxAge:            b.o.MaxAge,
		Storage:           storage,
		Replicas:          b.o.Replicas,
		Duplicates:        wsgate.IdempotentResultTTL,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, err
	}
	b.stream = s
	return s, nil
}

func (b *Broker) getStream() (jetstream.Stream, error) {
	b.streamMu.Lock()
	s := b.stream
	b.streamMu.Unlock()
	if s != nil {
		return s, nil
	}
	return b.ensureStream()
}

func (b *Broker) lock(channel string) *sync.Mutex {
	return &b.locks[maphash.String(b.seed, channel)%uint64(len(b.locks))]
}

func (b *Broker) cachedTop(channel string) (top, bool) {
	b.topMu.Lock()
	defer b.topMu.Unlock()
	t, ok := b.tops[channel]
	return t, ok
}

func (b *Broker) setTop(channel string, t *top) {
	b.topMu.Lock()
	defer b.topMu.Unlock()
	if t == nil {
		delete(b.tops, channel)
		return
	}
	if _, ok := b.tops[channel]; !ok && len(b.tops) >= maxTops {
		clear(b.tops)
	}
	b.tops[strings.Clone(channel)] = *t
}

// observe updates the cached top of a channel this node appended to from
// another node's live publication, so that this node's next append to it
// does not conflict. A stale top (a message arriving late) only costs a
// conflict and a re-read.
func (b *Broker) observe(channel string, t top) {
	b.topMu.Lock()
	defer b.topMu.Unlock()
	if old, ok := b.tops[channel]; ok && (old.epoch != t.epoch || old.offset < t.offset) {
		b.tops[channel] = t
	}
}

// last returns the last message of channel's history subject, nil if it
// has none.
func (b *Broker) last(channel string) (*jetstream.RawStreamMsg, error) {
	s, err := b.getStream()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	m, err := s.GetLastMsgForSubject(ctx, b.historySubject(channel))
	if errors.Is(err, nats.ErrNoResponders) && b.nc.IsConnected() {
		// Nobody serves the stream: NATS lost it. Make it again (every
		// channel then starts a new epoch).
		if s, err = b.ensureStream(); err != nil {
			return nil, err
		}
		m, err = s.GetLastMsgForSubject(ctx, b.historySubject(channel))
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return m, err
}

// readTop reads the top of channel from JetStream.
func (b *Broker) readTop(channel string) (top, error) {
	m, err := b.last(channel)
	if err != nil || m == nil {
		return top{}, err
	}
	_, sp, _, err := decode(m.Header, nil)
	if err != nil {
		return top{}, err
	}
	return top{seq: m.Sequence, offset: sp.Offset, epoch: sp.Epoch}, nil
}

// errRetries is returned when appends kept conflicting with other nodes'
// for Options.Timeout.
var errRetries = errors.New("natsbroker: appends to the channel kept conflicting with other nodes'")

// appendMsg appends a message to channel's history with the next offset
// (or, for a position marker, the current one). The append carries
// Nats-Expected-Last-Subject-Sequence: the stream sequence of the last
// message this node knows; when another node appended in between,
// JetStream refuses it, the top is read again and the append retried.
// So every offset is the previous one plus one, whichever node appends.
// The channel's lock is held by the caller.
func (b *Broker) appendMsg(channel string, m *nats.Msg, marker bool, msgID string) (top, *jetstream.PubAck, error) {
	t, ok := b.cachedTop(channel)
	var err error
	if !ok {
		if t, err = b.readTop(channel); err != nil {
			return top{}, nil, err
		}
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	deadline := time.Now().Add(b.o.Timeout)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		next := t
		if t.seq == 0 {
			// The channel has no message: a new stream of offsets.
			next = top{epoch: newEpoch()}
		}
		if !marker {
			next.offset++
		}
		m.Header.Set(hdrOffset, strconv.FormatUint(next.offset, 10))
		m.Header.Set(hdrEpoch, next.epoch)
		m.Header.Set(hdrPrev, strconv.FormatUint(t.seq, 10))
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(t.seq, 10))
		ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
		ack, err := b.js.PublishMsg(ctx, m, opts...)
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			if ack.Duplicate {
				b.setTop(channel, nil)
				return top{}, ack, nil
			}
			next.seq = ack.Sequence
			b.setTop(channel, &next)
			return next, ack, nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			// Another node appended first. A random pause, growing with
			// the attempts, keeps a node that keeps winning from starving
			// the others.
			time.Sleep(time.Duration(mrand.Int64N(int64(min(attempt+1, 20)) * int64(100*time.Microsecond))))
			if t, err = b.readTop(channel); err != nil {
				b.setTop(channel, nil)
				return top{}, nil, err
			}
		case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
			// The stream is gone (NATS lost its storage): make it again.
			// Every channel starts a new epoch.
			if _, err := b.ensureStream(); err != nil {
				b.setTop(channel, nil)
				return top{}, nil, err
			}
			t = top{}
		default:
			b.setTop(channel, nil)
			return top{}, nil, err
		}
	}
	b.setTop(channel, nil)
	return top{}, nil, errRetries
}

func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Publish implements wsgate.Broker. A publication with history is
// appended to JetStream first (which gives its offset), then published
// once on the channel's live subject for the other nodes, then handed to
// this node's handler. One without history is published on the live
// subject and handed to the handler: when NATS is down it still reaches
// this node's subscribers, and Publish returns the error.
func (b *Broker) Publish(channel string, data []byte, opts wsgate.PublishOptions) (wsgate.StreamPosition, error) {
	now := time.Now()
	pub := &wsgate.Publication{Data: data, Info: opts.Info, Tags: opts.Tags, Time: now.UnixMilli()}
	m := nats.NewMsg(b.liveSubject(channel))
	m.Data = data
	encode(m.Header, pub, opts.HistorySize)
	if limit := b.nc.MaxPayload(); limit > 0 && msgSize(m) > limit {
		// NATS would refuse it: no node but this one could have it.
		return wsgate.StreamPosition{}, ErrTooLarge
	}
	if opts.HistorySize <= 0 || opts.HistoryTTL <= 0 {
		if opts.IdempotencyKey != "" {
			if sp, ok := b.idem.Lookup(opts.IdempotencyKey, now); ok {
				return sp, nil
			}
		}
		err := b.nc.PublishMsg(m)
		if b.running.Load() {
			b.h.HandlePublication(channel, pub, wsgate.StreamPosition{})
		}
		if err != nil {
			return wsgate.StreamPosition{}, fmt.Errorf("natsbroker: publish to other nodes: %w", err)
		}
		if opts.IdempotencyKey != "" {
			b.idem.Remember(opts.IdempotencyKey, wsgate.StreamPosition{}, now)
		}
		return wsgate.StreamPosition{}, nil
	}
	if !b.nc.IsConnected() {
		return wsgate.StreamPosition{}, ErrNotConnected
	}
	var msgID string
	if opts.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(opts.IdempotencyKey))
		msgID = hex.EncodeToString(sum[:16])
	}
	mu := b.lock(channel)
	mu.Lock()
	defer mu.Unlock()
	m.Subject = b.historySubject(channel)
	t, ack, err := b.appendMsg(channel, m, false, msgID)
	if err != nil {
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) && !errors.Is(err, errRetries) {
			// No answer (a timeout, the connection lost): the
			// publication may be stored all the same, and then the
			// other nodes' readers see it: it is caught up here and
			// published live again.
			b.behind(channel, true)
		}
		return wsgate.StreamPosition{}, err
	}
	if ack.Duplicate {
		// Published before with this idempotency key: its position, as
		// this node remembers it or as its message tells.
		if sp, ok := b.idem.Lookup(opts.IdempotencyKey, now); ok {
			return sp, nil
		}
		s, err := b.getStream()
		if err != nil {
			return wsgate.StreamPosition{}, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
		defer cancel()
		orig, err := s.GetMsg(ctx, ack.Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Published through another node, and already gone from
			// the channel's history: published, at a position this
			// node cannot know.
			return wsgate.StreamPosition{}, nil
		}
		if err != nil {
			return wsgate.StreamPosition{}, err
		}
		_, sp, _, err := decode(orig.Header, nil)
		return sp, err
	}
	sp := wsgate.StreamPosition{Offset: t.offset, Epoch: t.epoch}
	if opts.IdempotencyKey != "" {
		b.idem.Remember(opts.IdempotencyKey, sp, now)
	}
	pub.Offset = t.offset
	m.Subject = b.liveSubject(channel)
	m.Header.Del(jetstream.ExpectedLastSubjSeqHeader)
	m.Header.Del(jetstream.MsgIDHeader)
	m.Header.Set(hdrSeq, strconv.FormatUint(t.seq, 10))
	if err := b.nc.PublishMsg(m); err != nil {
		// Stored, but the other nodes did not get it live (the link to
		// NATS went down just now): it is published live again when the
		// link is back (catchUp), or they fill it from history at the
		// channel's next publication, whichever comes first.
		b.log.Warn("live publish failed", "channel", channel, "offset", t.offset, "err", err)
		b.behind(channel, true)
	}
	if b.running.Load() {
		b.h.HandlePublication(channel, pub, sp)
	}
	return sp, nil
}

// History implements wsgate.Broker. A channel without any message gets a
// position marker (offset 0, a new epoch), so that its epoch is fixed
// from the first read on, as the memory broker's. Publications are read
// from the newest backwards, each message naming its predecessor's
// stream sequence (direct gets, no consumer).
func (b *Broker) History(channel string, opts wsgate.HistoryOptions) ([]*wsgate.Publication, wsgate.StreamPosition, error) {
	if !b.nc.IsConnected() {
		return nil, wsgate.StreamPosition{}, ErrNotConnected
	}
	last, err := b.last(channel)
	if err != nil {
		return nil, wsgate.StreamPosition{}, err
	}
	if last == nil {
		if last, err = b.mark(channel); err != nil {
			return nil, wsgate.StreamPosition{}, err
		}
	}
	lp, sp, kind, err := decode(last.Header, last.Data)
	if err != nil {
		return nil, sp, err
	}
	size, _ := strconv.Atoi(last.Header.Get(hdrSize))
	if size <= 0 || size > b.o.MaxHistorySize {
		size = b.o.MaxHistorySize
	}
	// The oldest offset the channel's history may hold.
	oldest := uint64(1)
	if sp.Offset > uint64(size) {
		oldest = sp.Offset - uint64(size) + 1
	}
	var minTime int64
	if opts.TTL > 0 {
		minTime = time.Now().Add(-opts.TTL).UnixMilli()
	}
	want := oldest // the oldest offset to return
	if opts.Since != nil {
		if (opts.Since.Epoch != "" && opts.Since.Epoch != sp.Epoch) || opts.Since.Offset > sp.Offset {
			return nil, sp, wsgate.ErrUnrecoverablePosition
		}
		if opts.Since.Offset == sp.Offset {
			return nil, sp, nil
		}
		if opts.Since.Offset+1 < oldest {
			return nil, sp, wsgate.ErrUnrecoverablePosition
		}
		want = opts.Since.Offset + 1
	} else if opts.Limit == 0 {
		return nil, sp, nil
	}
	var pubs []*wsgate.Publication // newest first
	m, p := last, lp
	isPos := kind == kindPos
	s, err := b.getStream()
	if err != nil {
		return nil, sp, err
	}
	for {
		if !isPos {
			if p.Offset < want || p.Time < minTime {
				break
			}
			pubs = append(pubs, p)
			if p.Offset == want {
				break
			}
		}
		prev, _ := strconv.ParseUint(m.Header.Get(hdrPrev), 10, 64)
		if prev == 0 || isPos {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
		m, err = s.GetMsg(ctx, prev)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // trimmed by JetStream's limits
		}
		if err != nil {
			return nil, sp, err
		}
		if p, _, kind, err = decode(m.Header, m.Data); err != nil {
			return nil, sp, err
		}
		isPos = kind == kindPos
	}
	if opts.Since != nil && (len(pubs) == 0 || pubs[len(pubs)-1].Offset != want) {
		return nil, sp, wsgate.ErrUnrecoverablePosition
	}
	if !opts.Reverse {
		for i, j := 0, len(pubs)-1; i < j; i, j = i+1, j-1 {
			pubs[i], pubs[j] = pubs[j], pubs[i]
		}
	}
	if opts.Limit >= 0 && len(pubs) > opts.Limit {
		pubs = pubs[:opts.Limit]
	}
	return pubs, sp, nil
}

// mark gives a channel without messages a position: a marker with offset
// 0 and a new epoch, appended only if the channel still has no message
// (another node's marker or publication appended first is as good).
func (b *Broker) mark(channel string) (*jetstream.RawStreamMsg, error) {
	m := nats.NewMsg(b.historySubject(channel))
	m.Header.Set(hdrKind, kindPos)
	m.Header.Set(hdrOffset, "0")
	m.Header.Set(hdrEpoch, newEpoch())
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	_, err := b.js.PublishMsg(ctx, m)
	cancel()
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		_, err = b.ensureStream()
	}
	if err != nil && !(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)) {
		return nil, err
	}
	b.setTop(channel, nil)
	last, err := b.last(channel)
	if err == nil && last == nil {
		err = errors.New("natsbroker: channel position not found")
	}
	return last, err
}

// RemoveHistory implements wsgate.Broker: a position marker is appended
// with the channel's offset and epoch (reads stop at it), then every
// older message of the channel is purged.
func (b *Broker) RemoveHistory(channel string) error {
	if !b.nc.IsConnected() {
		return ErrNotConnected
	}
	last, err := b.last(channel)
	if err != nil || last == nil {
		return err
	}
	mu := b.lock(channel)
	mu.Lock()
	m := nats.NewMsg(b.historySubject(channel))
	m.Header.Set(hdrKind, kindPos)
	_, _, err = b.appendMsg(channel, m, true, "")
	mu.Unlock()
	if err != nil {
		return err
	}
	s, err := b.getStream()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	return s.Purge(ctx, jetstream.WithPurgeSubject(b.historySubject(channel)), jetstream.WithPurgeKeep(1))
}

// encode writes pub's fields other than the offset and epoch into h.
func encode(h nats.Header, pub *wsgate.Publication, size int) {
	h.Set(hdrTime, strconv.FormatInt(pub.Time, 10))
	if size > 0 {
		h.Set(hdrSize, strconv.Itoa(size))
	}
	if pub.Info != nil {
		h.Set(hdrUser, pub.Info.User)
		h.Set(hdrClient, pub.Info.Client)
		if len(pub.Info.ConnInfo) > 0 {
			h.Set(hdrConnInfo, base64.StdEncoding.EncodeToString(pub.Info.ConnInfo))
		}
	}
	if len(pub.Tags) > 0 {
		t, _ := json.Marshal(pub.Tags)
		h.Set(hdrTags, string(t))
	}
}

// decode reads a message's publication, its position and its kind.
func decode(h nats.Header, data []byte) (*wsgate.Publication, wsgate.StreamPosition, string, error) {
	var sp wsgate.StreamPosition
	var err error
	if v := h.Get(hdrOffset); v != "" {
		if sp.Offset, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, sp, "", err
		}
	}
	sp.Epoch = h.Get(hdrEpoch)
	pub := &wsgate.Publication{Offset: sp.Offset, Data: data}
	pub.Time, _ = strconv.ParseInt(h.Get(hdrTime), 10, 64)
	if u, c := h.Get(hdrUser), h.Get(hdrClient); u != "" || c != "" {
		pub.Info = &wsgate.ClientInfo{User: u, Client: c}
		if ci := h.Get(hdrConnInfo); ci != "" {
			if pub.Info.ConnInfo, err = base64.StdEncoding.DecodeString(ci); err != nil {
				return nil, sp, "", err
			}
		}
	}
	if t := h.Get(hdrTags); t != "" {
		if err := json.Unmarshal([]byte(t), &pub.Tags); err != nil {
			return nil, sp, "", err
		}
	}
	return pub, sp, h.Get(hdrKind), nil
}

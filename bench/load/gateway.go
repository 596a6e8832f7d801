package load

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// The gateway scenario speaks Centrifugo's client protocol (v2, JSON)
// over the same client loops: each connection, once upgraded, sends one
// text frame with a connect command (an HS256 JWT the bench signs) and a
// subscribe command for GatewayTarget.Channel. The coordinator publishes
// through the server HTTP API (POST <API>/publish with X-API-Key) at
// PubRate, with PubConcurrency requests in flight at most (concurrent,
// not batched). Each publication's data is the JSON object GatewayData
// writes: a sequence number, the send time and a filler, Size bytes in
// all. Every push is verified: the data bytes exactly, and the channel
// offset, which must follow the previous one (or the subscribe reply's
// offset) by exactly one; a repeated or smaller offset counts as
// BadOrder, a gap as Lost. Server pings (an empty command, {}) are
// answered with {}.
//
// The channel must keep history (its offsets increase by one per
// publication only then).

// ScenarioGateway is the gateway scenario.
const ScenarioGateway = "gateway"

// GatewayTarget is what the gateway scenario needs beyond the ws:// URL.
type GatewayTarget struct {
	API     string // the HTTP API's base, http://host:port/api
	APIKey  string
	Secret  string // HMAC secret of connection tokens
	Channel string // the channel every client subscribes to (with history)
}

// gatewayHello returns the first frame's payload of every connection:
// connect (id 1) with a token for user "wsbench", then subscribe (id 2).
func gatewayHello(g *GatewayTarget) (string, error) {
	claims, _ := json.Marshal(map[string]any{"sub": "wsbench", "exp": time.Now().Add(24 * time.Hour).Unix()})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(g.Secret))
	mac.Write([]byte(signed))
	token := signed + "." + enc.EncodeToString(mac.Sum(nil))
	connect, err := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": token}})
	if err != nil {
		return "", err
	}
	sub, err := json.Marshal(map[string]any{"id": 2, "subscribe": map[string]any{"channel": g.Channel}})
	if err != nil {
		return "", err
	}
	return string(connect) + "\n" + string(sub), nil
}

// Keys of the publication data; chosen to appear nowhere else in a push.
var (
	keySeq  = []byte(`"wsb_s":`)
	keyTime = []byte(`"wsb_t":`)
	keyOff  = []byte(`"offset":`)
)

// GatewayData appends the data of publication seq sent at ts (unix ns
// since the run's epoch) to dst: {"wsb_s":seq,"wsb_t":ts,"p":"<filler>"},
// size bytes when size is large enough for the numbers.
func GatewayData(dst []byte, seq uint64, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"wsb_s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"wsb_t":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"p":"`...)
	for i := 0; len(dst)-start < size-2; i++ {
		dst = append(dst, 'a'+byte(i%26))
	}
	return append(dst, `"}`...)
}

// parseUintAfter returns the unsigned integer that follows key in b.
func parseUintAfter(b, key []byte, last bool) (uint64, bool) {
	var i int
	if last {
		i = bytes.LastIndex(b, key)
	} else {
		i = bytes.Index(b, key)
	}
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	n := 0
	var v uint64
	for n < len(b) && b[n] >= '0' && b[n] <= '9' && n < 20 {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n > 0
}

// Gateway verification failures.
var (
	errGWReply   = errors.New("gateway: error reply")
	errGWPush    = errors.New("gateway: push without offset or wsb_ data")
	errGWData    = errors.New("gateway: publication data differ from what was published")
	errGWUnknown = errors.New("gateway: unexpected message")
)

// gatewayMessage handles one text message from the server: one or more
// newline-separated replies and pushes.
func (ws *wsConn) gatewayMessage(msg []byte) {
	w := ws.w
	for len(msg) > 0 {
		var line []byte
		line, msg, _ = bytes.Cut(msg, []byte{'\n'})
		switch {
		case len(line) == 0:
		case bytes.Equal(line, []byte("{}")):
			// A server ping: the connect reply asked for pongs.
			ls := ws.ls
			ls.out = codec.AppendFrame(ls.out, codec.Header{Fin: true, OpCode: codec.OpText, Masked: true, Mask: ls.rnd.mask()}, line)
		case bytes.Contains(line, []byte(`"pub":`)):
			ws.gatewayPush(line)
		case bytes.HasPrefix(line, []byte(`{"id":`)):
			ws.gatewayReply(line)
		default:
			w.count.Protocol.Add(1)
			w.sample(fmt.Errorf("%w: %.200q", errGWUnknown, line))
		}
	}
}

// gatewayReply handles the replies to connect (id 1) and subscribe (id 2).
func (ws *wsConn) gatewayReply(line []byte) {
	w := ws.w
	var r struct {
		ID        uint32          `json:"id"`
		Error     json.RawMessage `json:"error"`
		Subscribe *struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"subscribe"`
	}
	if err := json.Unmarshal(line, &r); err != nil || r.Error != nil || (r.ID == 2 && r.Subscribe == nil) {
		w.count.Protocol.Add(1)
		w.subFailed.Add(1)
		w.sample(fmt.Errorf("%w: %.200q", errGWReply, line))
		return
	}
	if r.ID == 2 && !ws.subscribed {
		ws.subscribed = true
		ws.lastOff = r.Subscribe.Offset
		w.count.Subscribed.Add(1)
	}
}

// gatewayPush verifies one publication push: its offset first (so that
// one bad publication is not also counted as a gap), then its data.
func (ws *wsConn) gatewayPush(line []byte) {
	w := ws.w
	if !ws.subscribed {
		w.count.Protocol.Add(1)
		w.sample(errors.New("gateway: publication before the subscribe reply"))
	}
	off, ok := parseUintAfter(line, keyOff, true)
	if !ok {
		w.count.BadPayload.Add(1)
		w.sample(fmt.Errorf("%w: %.200q", errGWPush, line))
		return
	}
	switch {
	case off <= ws.lastOff:
		w.count.BadOrder.Add(1)
		w.sample(fmt.Errorf("gateway: offset %d after %d (repeated or out of order)", off, ws.lastOff))
		return
	case off > ws.lastOff+1:
		w.count.Lost.Add(int64(off - ws.lastOff - 1))
		w.sample(fmt.Errorf("gateway: offsets %d..%d never arrived", ws.lastOff+1, off-1))
	}
	ws.lastOff = off
	seq, ok1 := parseUintAfter(line, keySeq, false)
	ts, ok2 := parseUintAfter(line, keyTime, false)
	if !ok1 || !ok2 {
		w.count.BadPayload.Add(1)
		w.sample(fmt.Errorf("%w: %.200q", errGWPush, line))
		return
	}
	ls := ws.ls
	ls.data = GatewayData(ls.data[:0], seq, int64(ts), w.spec.Size)
	if !bytes.Contains(line, ls.data) {
		w.count.BadPayload.Add(1)
		w.sample(fmt.Errorf("%w: %.200q", errGWData, line))
		return
	}
	ws.accept(int64(ts))
}

// waitSubscribed waits until every upgraded connection has its subscribe
// answered (or failed), at most d.
func (w *worker) waitSubscribed(ctx context.Context, d time.Duration) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	end := time.After(d)
	for w.count.Subscribed.Load()+w.subFailed.Load() < w.count.Handshakes.Load() {
		select {
		case <-ctx.Done():
			return
		case <-end:
			w.sample(fmt.Errorf("gateway: %d of %d connections not subscribed after %v",
				w.count.Handshakes.Load()-w.count.Subscribed.Load()-w.subFailed.Load(), w.count.Handshakes.Load(), d))
			return
		case <-t.C:
		}
	}
}

// apiPublisher publishes GatewayData through the HTTP API.
type apiPublisher struct {
	g       *GatewayTarget
	size    int
	epoch   int64
	client  *http.Client
	sent    atomic.Int64  // publish requests answered with a result
	failed  atomic.Int64  // requests that failed or answered an error
	lastOff atomic.Uint64 // the largest offset the API answered
	errMu   sync.Mutex
	errs    []string
}

func newAPIPublisher(g *GatewayTarget, size, concurrency int, epoch int64) *apiPublisher {
	return &apiPublisher{g: g, size: size, epoch: epoch, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
	}}
}

// run publishes at rate per second with at most concurrency requests in
// flight until stop is closed, then waits for those in flight. A tick
// that finds every request slot busy is skipped and counted as failed.
func (p *apiPublisher) run(rate float64, concurrency int, stop <-chan struct{}) {
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for k := 1; ; k++ {
		select {
		case <-stop:
			wg.Wait()
			return
		case <-time.After(time.Until(start.Add(time.Duration(k) * interval))):
		}
		select {
		case slots <- struct{}{}:
		default:
			p.fail(errors.New("publisher: every request slot busy; publishing is the bottleneck"))
			continue
		}
		wg.Add(1)
		go func(seq uint64) {
			defer wg.Done()
			defer func() { <-slots }()
			p.publish(seq)
		}(uint64(k))
	}
}

func (p *apiPublisher) publish(seq uint64) {
	data := GatewayData(nil, seq, time.Now().UnixNano()-p.epoch, p.size)
	body := make([]byte, 0, len(data)+len(p.g.Channel)+32)
	body = append(body, `{"channel":`...)
	body = strconv.AppendQuote(body, p.g.Channel)
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	req, err := http.NewRequest(http.MethodPost, p.g.API+"/publish", bytes.NewReader(body))
	if err != nil {
		p.fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.g.APIKey)
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail(err)
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var reply struct {
		Result *struct {
			Offset uint64 `json:"offset"`
		} `json:"result"`
	}
	if err == nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, &reply)
	}
	if err != nil || resp.StatusCode != http.StatusOK || reply.Result == nil {
		p.fail(fmt.Errorf("publish: HTTP %d %.200q %v", resp.StatusCode, b, err))
		return
	}
	p.sent.Add(1)
	for {
		cur := p.lastOff.Load()
		if reply.Result.Offset <= cur || p.lastOff.CompareAndSwap(cur, reply.Result.Offset) {
			break
		}
	}
}

func (p *apiPublisher) fail(err error) {
	p.failed.Add(1)
	p.errMu.Lock()
	if len(p.errs) < maxSamples {
		p.errs = append(p.errs, err.Error())
	}
	p.errMu.Unlock()
}

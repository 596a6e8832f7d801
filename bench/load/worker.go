package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// Scenarios.
const (
	ScenarioIdle   = "idle"
	ScenarioEcho   = "echo"
	ScenarioFanout = "fanout"
	ScenarioStorm  = "storm"
)

// bcastPrefix starts a message the -broadcast servers send to everyone.
const bcastPrefix = "BCAST "

// workerEnv marks a process started as a worker.
const workerEnv = "WSBENCH_WORKER"

// IsWorker reports whether this process was started by Run as a worker.
// Programs that call Run (and their TestMain) must call WorkerMain first
// thing when it is true.
func IsWorker() bool { return os.Getenv(workerEnv) == "1" }

// WorkerMain runs a worker on stdin/stdout and exits.
func WorkerMain() {
	os.Exit(runWorker(os.Stdin, os.Stdout))
}

// Spec is a worker's share of a run, sent as the first line on its stdin.
type Spec struct {
	Scenario         string        `json:"scenario"`
	URL              string        `json:"url"`
	Headers          []string      `json:"headers,omitempty"`
	Subprotocol      string        `json:"subprotocol,omitempty"`
	Deflate          bool          `json:"deflate,omitempty"`
	Takeover         bool          `json:"takeover,omitempty"` // with Deflate: offer server context takeover
	Conns            int           `json:"conns"`              // connections (storm: concurrent connections)
	Step             int           `json:"step,omitempty"`     // gateway: connect this many, report "step", wait for "more"; 0: all at once
	Publisher        bool          `json:"publisher,omitempty"`
	Stalled          int           `json:"stalled,omitempty"` // fanout: subscribers that never read (see stalled.go)
	Sources          []string      `json:"sources,omitempty"` // local addresses to dial from, round robin
	DialRate         float64       `json:"dial_rate"`         // connections per second, 0: unlimited
	Dialers          int           `json:"dialers"`
	Size             int           `json:"size"`
	InFlight         int           `json:"inflight"`
	Text             bool          `json:"text,omitempty"`
	PubRate          float64       `json:"pub_rate,omitempty"`
	Epoch            int64         `json:"epoch"`           // unix ns, the time origin of message timestamps
	Hello            string        `json:"hello,omitempty"` // gateway: the first frame's payload (connect, subscribe)
	Loops            int           `json:"loops"`
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	Lifetime         time.Duration `json:"lifetime"` // hard limit of the worker's life
}

// Counters are a worker's running totals.
type Counters struct {
	Open          int64 `json:"open"`           // upgraded connections now open (a gauge)
	Stalled       int64 `json:"stalled"`        // stalled subscribers open (a gauge)
	Handshakes    int64 `json:"handshakes"`     // verified 101 responses
	HSFailed      int64 `json:"hs_failed"`      // dial errors, bad or missing 101s, timeouts
	Sent          int64 `json:"sent"`           // messages sent
	Recv          int64 `json:"recv"`           // complete, verified messages received
	WinRecv       int64 `json:"win_recv"`       // the same within the measuring window
	WinBytes      int64 `json:"win_bytes"`      // their payload bytes
	WinWire       int64 `json:"win_wire"`       // the same as they came: compressed size when compressed
	WinHandshakes int64 `json:"win_handshakes"` // handshakes within the window (storm)
	WinHSFailed   int64 `json:"win_hs_failed"`  // failures within the window (storm)
	Compressed    int64 `json:"compressed"`     // verified messages that arrived compressed
	BadPayload    int64 `json:"bad_payload"`    // wrong length, bytes, header or opcode
	BadOrder      int64 `json:"bad_order"`      // sequence repeated or reordered
	Lost          int64 `json:"lost"`           // fanout messages skipped in the sequence
	Protocol      int64 `json:"protocol"`       // frame errors, unexpected close frames
	Dropped       int64 `json:"dropped"`        // connections lost without a close frame
	Subscribed    int64 `json:"subscribed"`     // gateway: subscribe replies received
	Takeover      int64 `json:"takeover"`       // handshakes whose server kept its deflate context
}

// Errors returns the number of verification and protocol errors.
func (c *Counters) Errors() int64 {
	return c.BadPayload + c.BadOrder + c.Lost + c.Protocol + c.Dropped
}

func (c *Counters) add(o *Counters) {
	c.Open += o.Open
	c.Stalled += o.Stalled
	c.Handshakes += o.Handshakes
	c.HSFailed += o.HSFailed
	c.Sent += o.Sent
	c.Recv += o.Recv
	c.WinRecv += o.WinRecv
	c.WinBytes += o.WinBytes
	c.WinWire += o.WinWire
	c.WinHandshakes += o.WinHandshakes
	c.WinHSFailed += o.WinHSFailed
	c.Compressed += o.Compressed
	c.BadPayload += o.BadPayload
	c.BadOrder += o.BadOrder
	c.Lost += o.Lost
	c.Protocol += o.Protocol
	c.Dropped += o.Dropped
	c.Subscribed += o.Subscribed
	c.Takeover += o.Takeover
}

// atomicCounters is Counters for concurrent update.
type atomicCounters struct {
	Handshakes, HSFailed, Sent, Recv, WinRecv, WinBytes, WinWire, WinHandshakes, WinHSFailed, Compressed atomic.Int64
	BadPayload, BadOrder, Lost, Protocol, Dropped, Subscribed, Takeover                                  atomic.Int64
}

// Event is one line a worker writes to its stdout.
type Event struct {
	E        string   `json:"e"` // "progress", "ready", "result" or "fatal"
	Counters Counters `json:"c"`
	// result only
	Lat        *HistData `json:"lat,omitempty"`
	HS         *HistData `json:"hs,omitempty"`
	FirstDial  int64     `json:"first_dial,omitempty"` // unix ns
	LastHS     int64     `json:"last_hs,omitempty"`    // unix ns
	CPUSeconds float64   `json:"cpu,omitempty"`        // this worker's own CPU time
	Samples    []string  `json:"samples,omitempty"`    // the first distinct errors
	Err        string    `json:"err,omitempty"`
}

// worker is one load-generating process.
type worker struct {
	spec    Spec
	target  *Target
	cli     *gnet.Client
	req     requestTemplate
	op      codec.OpCode
	fill    []byte // the filler text: fixed (echo) or the ticks (fanout)
	ticks   bool   // fanout: the filler moves with the sequence (tickOffset)
	hello   []byte // gateway: Spec.Hello
	tmpl    *template
	pubTmpl *template
	dialers []*net.Dialer
	stalled []net.Conn // fanout: stalled subscribers

	mu    sync.Mutex
	loops map[gnet.EventLoop]*loopState
	list  []*loopState

	live      atomic.Int64 // registered with gnet and not yet closed
	nStalled  atomic.Int64 // len(stalled), for snapshot
	open      atomic.Int64 // upgraded and not yet closed
	subFailed atomic.Int64 // gateway: connect or subscribe refused
	running   atomic.Bool  // send traffic
	measuring atomic.Bool  // count into the window
	closing   atomic.Bool  // shutting connections down
	count     atomicCounters
	firstDial atomic.Int64
	lastHS    atomic.Int64
	pubConn   atomic.Pointer[wsConn]

	tokens  chan struct{} // storm: one per connection allowed in flight
	lastPub uint32        // fanout: the last broadcast published, from "close N"

	sampleMu sync.Mutex
	samples  []string

	outMu sync.Mutex
	enc   *json.Encoder
}

const maxSamples = 8

func runWorker(in io.Reader, out io.Writer) int {
	// WSBENCH_WORKER_CPUPROFILE=prefix profiles the worker itself (to
	// check that the load generator is not the bottleneck).
	if prefix := os.Getenv("WSBENCH_WORKER_CPUPROFILE"); prefix != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d.pprof", prefix, os.Getpid())); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	w := &worker{enc: json.NewEncoder(out), loops: map[gnet.EventLoop]*loopState{}}
	if err != nil {
		w.emit(Event{E: "fatal", Err: "read spec: " + err.Error()})
		return 2
	}
	if err := json.Unmarshal(line, &w.spec); err != nil {
		w.emit(Event{E: "fatal", Err: "bad spec: " + err.Error()})
		return 2
	}
	if err := w.init(); err != nil {
		w.emit(Event{E: "fatal", Err: err.Error()})
		return 2
	}
	// The lifetime bounds everything; the parent closing stdin ends the
	// run early (it has gone away or wants no more).
	ctx, cancel := context.WithTimeout(context.Background(), w.spec.Lifetime)
	defer cancel()
	cmds := make(chan string, 8)
	go func() {
		defer cancel()
		for {
			l, err := br.ReadString('\n')
			if len(l) > 1 {
				cmds <- l[:len(l)-1]
			}
			if err != nil {
				close(cmds)
				return
			}
		}
	}()

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				w.emit(Event{E: "progress", Counters: w.snapshot()})
			case <-stopProgress:
				return
			}
		}
	}()

	// Connect phase (storm connects on "run").
	switch w.spec.Scenario {
	case ScenarioStorm:
	case ScenarioGateway:
		if k := w.spec.Step; k > 0 && k < w.spec.Conns {
			w.connect(ctx, 0, k)
			w.waitSubscribed(ctx, 30*time.Second)
			w.emit(Event{E: "step", Counters: w.snapshot()})
			select {
			case cmd := <-cmds:
				if cmd != "more" {
					w.emit(Event{E: "fatal", Err: fmt.Sprintf("got %q after step; want more", cmd)})
					return 2
				}
			case <-ctx.Done():
			}
			w.connect(ctx, k, w.spec.Conns)
		} else {
			w.connect(ctx, 0, w.spec.Conns)
		}
		w.waitSubscribed(ctx, 30*time.Second)
	default:
		w.connect(ctx, 0, w.spec.Conns)
		if w.spec.Scenario == ScenarioFanout {
			w.stallAll(ctx)
		}
	}
	w.sampleMu.Lock()
	samples := append([]string(nil), w.samples...)
	w.sampleMu.Unlock()
	w.emit(Event{E: "ready", Counters: w.snapshot(), Samples: samples})

	var (
		stopPub = make(chan struct{})
		pubDone sync.WaitGroup
		storm   context.CancelFunc = func() {}
		stormWG sync.WaitGroup
		stopped bool
	)
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		w.measuring.Store(false)
		w.running.Store(false)
		close(stopPub)
		storm()
	}
loop:
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				break loop // stdin closed: wind down
			}
			switch cmd {
			case "run":
				w.running.Store(true)
				switch w.spec.Scenario {
				case ScenarioEcho:
					w.eachLoop(func(ls *loopState) { ls.startEcho() })
				case ScenarioFanout:
					if w.spec.Publisher {
						pubDone.Add(1)
						go func() { defer pubDone.Done(); w.publish(stopPub) }()
					}
				case ScenarioStorm:
					sctx, cancel := context.WithCancel(ctx)
					storm = cancel
					w.startStorm(sctx, &stormWG)
				}
			case "measure":
				w.measuring.Store(true)
			case "stop":
				stop()
				pubDone.Wait()
				w.eachLoop(func(*loopState) {}) // sends queued on the loops are done
				w.emit(Event{E: "stopped", Counters: w.snapshot()})
			default:
				if n, ok := strings.CutPrefix(cmd, "close"); ok {
					last, _ := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
					w.lastPub = uint32(last)
					break loop
				}
			}
		case <-ctx.Done():
			break loop
		}
	}
	stop()
	pubDone.Wait()
	stormWG.Wait()
	w.closeAll(3 * time.Second)
	w.closeStalled()
	_ = w.cli.Stop()
	close(stopProgress)
	<-progressDone

	res := Event{E: "result", Counters: w.snapshot()}
	var lat, hs Histogram
	for _, ls := range w.list {
		lat.Merge(&ls.lat)
		hs.Merge(&ls.hs)
	}
	ld, hd := lat.Data(), hs.Data()
	res.Lat, res.HS = &ld, &hd
	res.FirstDial, res.LastHS = w.firstDial.Load(), w.lastHS.Load()
	res.CPUSeconds = selfCPU()
	w.sampleMu.Lock()
	res.Samples = w.samples
	w.sampleMu.Unlock()
	w.emit(res)
	return 0
}

// init validates the spec and starts the gnet client.
func (w *worker) init() error {
	s := &w.spec
	t, err := ParseTarget(s.URL)
	if err != nil {
		return err
	}
	w.target = t
	if s.Size < MinSize {
		s.Size = MinSize
	}
	if s.Lifetime <= 0 {
		s.Lifetime = time.Hour
	}
	if s.HandshakeTimeout <= 0 {
		s.HandshakeTimeout = 10 * time.Second
	}
	if s.Dialers <= 0 {
		s.Dialers = 8
	}
	if s.InFlight <= 0 {
		s.InFlight = 1
	}
	w.op = codec.OpBinary
	if s.Text {
		w.op = codec.OpText
	}
	w.req = newRequest(t, s.Headers, s.Subprotocol, s.Deflate, s.Takeover)
	w.fill = filler(s.Size)
	if s.Scenario == ScenarioFanout {
		w.fill, w.ticks = ticks(s.Size), true
	}
	w.hello = []byte(s.Hello)
	if w.tmpl, err = newTemplate("", s.Size, w.fill, s.Deflate); err != nil {
		return err
	}
	if s.Publisher {
		// The publisher compresses each tick as it sends it.
		if w.pubTmpl, err = newTemplate(bcastPrefix, s.Size, w.fill, false); err != nil {
			return err
		}
	}
	if len(s.Sources) == 0 {
		w.dialers = []*net.Dialer{newDialer(nil)}
	}
	for _, src := range s.Sources {
		ip := net.ParseIP(src)
		if ip == nil {
			return fmt.Errorf("load: bad source address %q", src)
		}
		w.dialers = append(w.dialers, newDialer(&net.TCPAddr{IP: ip}))
	}
	w.tokens = make(chan struct{}, max(s.Conns, 1))
	loops := s.Loops
	if loops <= 0 {
		loops = 2
	}
	w.cli, err = gnet.NewClient(&handler{w: w},
		gnet.WithNumEventLoop(loops),
		gnet.WithLogger(quietLogger{}),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(64<<10))
	if err != nil {
		return err
	}
	return w.cli.Start()
}

// newDialer returns a dialer bound to src (nil: any). With a source
// address, IP_BIND_ADDRESS_NO_PORT lets connect() choose the port, so the
// ephemeral ports are per destination, not per source address.
func newDialer(src *net.TCPAddr) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = src
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				const ipBindAddressNoPort = 24 // linux/in.h IP_BIND_ADDRESS_NO_PORT
				_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
		}
	}
	return d
}

// loopFor returns the state of loop el, creating it on first use. It is
// called from OnOpen, on el.
func (w *worker) loopFor(el gnet.EventLoop) *loopState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ls, ok := w.loops[el]; ok {
		return ls
	}
	ls := &loopState{w: w, el: el, rnd: rng{x: uint64(time.Now().UnixNano()) | 1}}
	ls.rnd.x += uint64(len(w.list)) * 0x9e3779b97f4a7c15
	ls.plain = append([]byte(nil), w.tmpl.plain...)
	ls.zplain = append([]byte(nil), w.tmpl.z...)
	if w.pubTmpl != nil {
		ls.pub = append([]byte(nil), w.pubTmpl.plain...)
	}
	w.loops[el] = ls
	w.list = append(w.list, ls)
	return ls
}

// eachLoop runs f on every loop's goroutine and waits for all to finish
// (at most 5 s).
func (w *worker) eachLoop(f func(ls *loopState)) {
	w.mu.Lock()
	list := append([]*loopState(nil), w.list...)
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, ls := range list {
		wg.Add(1)
		err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer wg.Done()
			ls.now = time.Now().UnixNano()
			ls.measuring = w.measuring.Load()
			f(ls)
			return nil
		}))
		if err != nil {
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// flush writes the loop's output to ws, on the loop.
func (ls *loopState) flush(ws *wsConn) {
	if len(ls.out) > 0 && ws.state != stClosed {
		_, _ = ws.c.Write(ls.out)
	}
	ls.out = ls.out[:0]
}

// startEcho sends the first InFlight messages on every open connection.
func (ls *loopState) startEcho() {
	for _, ws := range ls.conns {
		if ws.state != stOpen {
			continue
		}
		ls.out = ls.out[:0]
		for range ls.w.spec.InFlight {
			ws.appendMessage()
		}
		ls.flush(ws)
	}
}

// sweep fails handshakes that are too slow and closes connections whose
// closing handshake is stuck.
func (ls *loopState) sweep() {
	w := ls.w
	for i := 0; i < len(ls.conns); i++ {
		ws := ls.conns[i]
		switch {
		case ws.state == stHandshake && ls.now-ws.hsStart > int64(w.spec.HandshakeTimeout):
			w.hsFail(errors.New("handshake: no 101 within the handshake timeout"))
			ws.closeNow()
			_ = ws.c.Close()
			i-- // closeNow moved the last conn here
		case ws.state == stClosing && ls.now-ws.closeAt > int64(2*time.Second):
			_ = ws.c.Close()
		}
	}
}

// dial opens connection number k: dial, enroll with gnet (OnOpen sends
// the upgrade request).
func (w *worker) dial(k int, publisher bool) {
	ws := &wsConn{w: w, publisher: publisher, idx: -1, hsStart: time.Now().UnixNano()}
	w.firstDial.CompareAndSwap(0, ws.hsStart)
	d := w.dialers[k%len(w.dialers)]
	nc, err := d.Dial("tcp", w.target.Addr)
	if err != nil {
		w.hsFail(fmt.Errorf("dial: %w", err))
		if w.spec.Scenario == ScenarioStorm {
			w.releaseToken()
		}
		return
	}
	if _, err := w.cli.EnrollContext(nc, ws); err != nil {
		w.hsFail(fmt.Errorf("enroll: %w", err))
		if w.spec.Scenario == ScenarioStorm {
			w.releaseToken()
		}
	}
}

// connect opens the worker's connections from to to (and the publisher
// first, with from 0) at the spec's rate, then waits until every
// handshake so far has succeeded or failed.
func (w *worker) connect(ctx context.Context, from, to int) {
	if w.spec.Publisher && from == 0 {
		w.dial(0, true)
		w.waitSettled(ctx, 1)
	}
	var next atomic.Int64
	next.Store(int64(from))
	start := time.Now()
	var wg sync.WaitGroup
	for range min(w.spec.Dialers, max(to-from, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= to || ctx.Err() != nil {
					return
				}
				if r := w.spec.DialRate; r > 0 {
					at := start.Add(time.Duration(float64(k-from) / r * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				w.dial(k+1, false)
			}
		}()
	}
	wg.Wait()
	n := int64(to)
	if w.spec.Publisher {
		n++
	}
	w.waitSettled(ctx, n)
}

// waitSettled waits until n connections have upgraded or failed, sweeping
// slow handshakes.
func (w *worker) waitSettled(ctx context.Context, n int64) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	sweep := time.Now()
	for w.count.Handshakes.Load()+w.count.HSFailed.Load() < n {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(sweep) > 250*time.Millisecond {
			sweep = time.Now()
			w.eachLoop(func(ls *loopState) { ls.sweep() })
		}
	}
}

// startStorm churns connections: spec.Conns in flight at a time, each
// dialled, upgraded and closed at once, until ctx ends.
func (w *worker) startStorm(ctx context.Context, wg *sync.WaitGroup) {
	for range cap(w.tokens) {
		w.tokens <- struct{}{}
	}
	var k atomic.Int64
	for range min(w.spec.Dialers, cap(w.tokens)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-w.tokens:
				}
				if ctx.Err() != nil {
					return
				}
				w.dial(int(k.Add(1)), false)
			}
		}()
	}
	wg.Add(1)
	go func() { // the sweeper
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.eachLoop(func(ls *loopState) { ls.sweep() })
			}
		}
	}()
}

// releaseToken lets the storm open another connection.
func (w *worker) releaseToken() {
	select {
	case w.tokens <- struct{}{}:
	default:
	}
}

// publish sends "BCAST " messages at spec.PubRate until stop is closed.
func (w *worker) publish(stop <-chan struct{}) {
	pc := w.pubConn.Load()
	if pc == nil || w.spec.PubRate <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / w.spec.PubRate)
	start := time.Now()
	var seq uint32
	run := gnet.RunnableFunc(func(context.Context) error {
		if pc.state != stOpen || !w.running.Load() {
			return nil
		}
		ls := pc.ls
		ls.now = time.Now().UnixNano()
		ls.out = ls.out[:0]
		seq++
		pc.appendPublish(seq)
		ls.flush(pc)
		return nil
	})
	for k := 1; ; k++ {
		at := start.Add(time.Duration(k) * interval)
		select {
		case <-stop:
			return
		case <-time.After(time.Until(at)):
		}
		if err := pc.ls.el.Execute(context.Background(), run); err != nil {
			return
		}
	}
}

// closeAll starts the closing handshake on every connection and waits up
// to d for all to close.
func (w *worker) closeAll(d time.Duration) {
	w.closing.Store(true)
	w.eachLoop(func(ls *loopState) {
		for i := 0; i < len(ls.conns); i++ {
			ws := ls.conns[i]
			switch ws.state {
			case stOpen:
				ls.out = ls.out[:0]
				ws.sendClose(codec.StatusNormalClosure)
				ls.flush(ws)
			case stHandshake:
				_ = ws.c.Close()
			}
		}
	})
	deadline := time.Now().Add(d)
	for w.live.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// hsFail counts a failed connection attempt.
func (w *worker) hsFail(err error) {
	w.count.HSFailed.Add(1)
	if w.measuring.Load() {
		w.count.WinHSFailed.Add(1)
	}
	w.sample(err)
}

// markHandshake records the time of the latest handshake.
func (w *worker) markHandshake(now int64) {
	for {
		old := w.lastHS.Load()
		if now <= old || w.lastHS.CompareAndSwap(old, now) {
			return
		}
	}
}

// sample keeps the first few distinct error messages.
func (w *worker) sample(err error) {
	msg := err.Error()
	w.sampleMu.Lock()
	defer w.sampleMu.Unlock()
	if len(w.samples) >= maxSamples {
		return
	}
	for _, s := range w.samples {
		if s == msg {
			return
		}
	}
	w.samples = append(w.samples, msg)
}

func (w *worker) snapshot() Counters {
	c := &w.count
	return Counters{
		Open:          w.open.Load(),
		Stalled:       w.nStalled.Load(),
		Handshakes:    c.Handshakes.Load(),
		HSFailed:      c.HSFailed.Load(),
		Sent:          c.Sent.Load(),
		Recv:          c.Recv.Load(),
		WinRecv:       c.WinRecv.Load(),
		WinBytes:      c.WinBytes.Load(),
		WinWire:       c.WinWire.Load(),
		WinHandshakes: c.WinHandshakes.Load(),
		WinHSFailed:   c.WinHSFailed.Load(),
		Compressed:    c.Compressed.Load(),
		BadPayload:    c.BadPayload.Load(),
		BadOrder:      c.BadOrder.Load(),
		Lost:          c.Lost.Load(),
		Protocol:      c.Protocol.Load(),
		Dropped:       c.Dropped.Load(),
		Subscribed:    c.Subscribed.Load(),
		Takeover:      c.Takeover.Load(),
	}
}

func (w *worker) emit(ev Event) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_ = w.enc.Encode(ev)
}

// selfCPU returns this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// quietLogger drops gnet's informational logs; errors go to stderr.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wsbench worker: gnet: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wsbench worker: gnet: "+format+"\n", args...)
}

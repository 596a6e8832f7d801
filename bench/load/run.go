package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config describes one run of one scenario against one server.
type Config struct {
	Scenario string // ScenarioIdle, ScenarioEcho, ScenarioFanout, ScenarioStorm or ScenarioGateway
	// URL is ws://host:port/path; the gateway scenario also takes several,
	// comma-separated (the nodes of a cluster): the clients are spread
	// evenly over them, one URL per worker process in turn.
	URL         string
	Headers     []string // extra request header lines, "Name: value"
	Subprotocol string   // offered in Sec-WebSocket-Protocol; the server must accept it
	Deflate     bool     // offer permessage-deflate; the server must accept it
	// Takeover, with Deflate, offers permessage-deflate without
	// server_no_context_takeover: a server that keeps its context is read
	// with each connection's own 32 KiB window (2^server_max_window_bits
	// when the server names it); that is up to 40 KiB per connection.
	Takeover bool

	Conns    int     // idle and echo: connections; fanout: subscribers; storm: connections in flight
	Size     int     // message size in bytes (>= MinSize)
	InFlight int     // echo: messages in flight per connection
	Text     bool    // echo: send text messages (default binary)
	PubRate  float64 // fanout: broadcasts per second; gateway: API publishes per second
	// Gateway is the gateway scenario's server API, token secret and
	// channel; PubConcurrency bounds its publish requests in flight (0: 8).
	Gateway        *GatewayTarget
	PubConcurrency int
	Stalled        int           // fanout: extra subscribers that upgrade and then never read
	Duration       time.Duration // echo, fanout, storm: the measuring window
	Warmup         time.Duration // echo, fanout, storm: traffic before the window opens
	Hold           time.Duration // idle: how long connections are held before the server is measured
	DialRate       float64       // connections per second while connecting, 0: unlimited

	Workers           int      // worker processes, 0: enough for MaxConnsPerWorker
	MaxConnsPerWorker int      // 0: 8000 (the open-file limit here is 20,000 per process)
	Sources           []string // local source addresses; nil: DefaultSources(target, 4)
	Loops             int      // gnet event loops per worker, 0: 2
	Dialers           int      // dialling goroutines per worker, 0: 8

	Stats       StatsSource // where server memory and CPU come from, if anywhere
	CPUProfile  string      // save a server CPU profile of the window here (needs Stats.URL)
	HeapProfile string      // save a server heap profile at the end of the window (needs Stats.URL)

	Progress  io.Writer        // live progress, once a second; nil: none
	Stderr    io.Writer        // workers' stderr; nil: os.Stderr
	WorkerCmd func() *exec.Cmd // starts a worker; nil: this executable
	Label     string           // shown in progress lines
	Timeout   time.Duration    // bound of the whole run; 0: derived from the durations
}

// Result is what a run measured. Durations are in microseconds, rates per
// second, memory in bytes. Server figures are present only when the
// server's stats were available.
type Result struct {
	Scenario string  `json:"scenario"`
	URL      string  `json:"url"`
	Deflate  bool    `json:"deflate"`
	Takeover bool    `json:"takeover,omitempty"` // deflate offered with server context takeover (Counters.Takeover: how many servers kept it)
	Conns    int     `json:"conns"`
	Size     int     `json:"size,omitempty"`
	InFlight int     `json:"inflight,omitempty"`
	PubRate  float64 `json:"pub_rate,omitempty"`
	// gateway: publish requests in flight at most (concurrent, not
	// batched), publications the API accepted and publish failures.
	PubConcurrency int      `json:"pub_concurrency,omitempty"`
	Published      int64    `json:"published,omitempty"`
	PubFailed      int64    `json:"pub_failed,omitempty"`
	PubErrors      []string `json:"pub_errors,omitempty"`
	Stalled        int      `json:"stalled,omitempty"`
	Workers        int      `json:"workers"`
	WindowSec      float64  `json:"window_sec,omitempty"`

	Counters Counters `json:"counters"`
	Errors   int64    `json:"errors"` // verification and protocol errors (Counters.Errors)
	Samples  []string `json:"error_samples,omitempty"`

	HandshakesPerSec float64 `json:"handshakes_per_sec,omitempty"`
	HandshakeP50     float64 `json:"handshake_p50_us,omitempty"`
	HandshakeP99     float64 `json:"handshake_p99_us,omitempty"`

	MsgsPerSec float64 `json:"msgs_per_sec,omitempty"` // echo: round trips; fanout: deliveries
	LatP50     float64 `json:"lat_p50_us,omitempty"`
	LatP99     float64 `json:"lat_p99_us,omitempty"`
	LatP999    float64 `json:"lat_p999_us,omitempty"`
	LatMax     float64 `json:"lat_max_us,omitempty"`
	LatMean    float64 `json:"lat_mean_us,omitempty"`

	Server           *ServerFigures `json:"server,omitempty"`
	ClientCPUSeconds float64        `json:"client_cpu_seconds"`
	Profiles         []string       `json:"profiles,omitempty"`
}

// ServerFigures are the server-side measurements.
type ServerFigures struct {
	Before    ServerStats  `json:"before"`
	After     ServerStats  `json:"after"`
	Baseline  *ServerStats `json:"baseline,omitempty"`  // gateway: before the first connection
	Connected *ServerStats `json:"connected,omitempty"` // gateway: once every client subscribed
	// Step is, in the gateway scenario, the server once the first half
	// of the clients subscribed (the others connect after it is read),
	// and StepClients how many had. RSSPerAdded is the RSS growth from
	// Step to Connected per client subscribed in between: the cost of
	// one more client, without what the first clients paid once (code
	// paged in, the runtime's own structures).
	Step           *ServerStats `json:"step,omitempty"`
	StepClients    int64        `json:"step_clients,omitempty"`
	RSSPerAdded    float64      `json:"rss_per_added,omitempty"`
	HeapPerConn    float64      `json:"heap_per_conn,omitempty"` // idle
	RSSPerConn     float64      `json:"rss_per_conn,omitempty"`  // idle; gateway: per subscribed client
	CPUSeconds     float64      `json:"cpu_seconds"`             // in the window (idle: while connecting and holding)
	CPUPerMsgUs    float64      `json:"cpu_per_msg_us,omitempty"`
	CPUUtilization float64      `json:"cpu_utilization"` // CPUSeconds / window, in cores
}

// workerProc is a running worker.
type workerProc struct {
	cmd           *exec.Cmd
	stdin         io.WriteCloser
	last          Counters // from the latest event
	readyCounters Counters // when the connect phase ended
	readySamples  []string // and the errors until then
	ready         bool
	stepCounters  Counters // gateway: when the first half subscribed
	stepped       bool
	stopped       bool
	result        *Event
	fatal         string
	exited        bool
}

type workerEvent struct {
	i  int
	ev Event
	// eof is set when the worker's stdout ended
	eof bool
}

// runner drives one Run.
type runner struct {
	cfg     Config
	target  *Target
	workers []*workerProc
	events  chan workerEvent
	start   time.Time
	lastP   time.Time
	lastN   int64
	phase   string
	lastPub int64 // fanout: broadcasts published; gateway: the last offset; known after "stop"
	epoch   int64 // unix ns, the time origin of message timestamps
	pub     *apiPublisher
	// step: the gateway clients connect in two halves, the server read
	// between them (ServerFigures.Step).
	step bool
}

// stepOf returns the Spec.Step of a worker with n connections.
func (r *runner) stepOf(n int) int {
	if !r.step {
		return 0
	}
	return n / 2
}

// Run performs one scenario run: it starts worker processes, connects,
// drives the phases, reads the server's stats around them and returns the
// aggregate. It returns an error when the run could not be carried out;
// verification errors are counted in the Result, not returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	urls := strings.Split(cfg.URL, ",")
	for _, u := range urls[1:] {
		if _, err := ParseTarget(u); err != nil {
			return nil, err
		}
	}
	t, err := ParseTarget(urls[0])
	if err != nil {
		return nil, err
	}
	if cfg.Sources == nil {
		cfg.Sources = DefaultSources(t, 4)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		connect := 30 * time.Second
		if cfg.DialRate > 0 {
			connect += time.Duration(float64(cfg.Conns) / cfg.DialRate * float64(time.Second))
		}
		timeout = connect + cfg.Hold + cfg.Warmup + cfg.Duration + 60*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := time.Now()
	r := &runner{cfg: cfg, target: t, events: make(chan workerEvent, 64), start: now, lastP: now, epoch: now.UnixNano(),
		step: cfg.Scenario == ScenarioGateway && cfg.Stats.Available() && cfg.Conns >= 2*cfg.Workers}
	defer r.kill()
	return r.run(ctx, timeout)
}

func (c *Config) normalize() error {
	switch c.Scenario {
	case ScenarioIdle, ScenarioEcho, ScenarioFanout, ScenarioStorm:
	case ScenarioGateway:
		if c.Gateway == nil || c.Gateway.API == "" || c.Gateway.Channel == "" {
			return errors.New("load: the gateway scenario needs the server's API URL, key, token secret and a channel")
		}
		if c.Deflate {
			return errors.New("load: the gateway scenario runs without permessage-deflate")
		}
		if c.PubRate <= 0 {
			c.PubRate = 10
		}
		if c.PubConcurrency <= 0 {
			c.PubConcurrency = 8
		}
	default:
		return fmt.Errorf("load: unknown scenario %q (idle, echo, fanout, storm, gateway)", c.Scenario)
	}
	if c.Takeover && !c.Deflate {
		return errors.New("load: context takeover needs permessage-deflate")
	}
	if c.Conns <= 0 {
		return errors.New("load: need at least one connection")
	}
	if c.Size == 0 {
		c.Size = 64
	}
	if c.Size < MinSize || c.Size > MaxSize {
		return fmt.Errorf("load: message size %d out of range [%d, %d]: every message carries a 24-byte header", c.Size, MinSize, MaxSize)
	}
	if c.InFlight <= 0 {
		c.InFlight = 1
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Scenario == ScenarioFanout && c.PubRate <= 0 {
		c.PubRate = 10
	}
	if c.Stalled < 0 || c.Stalled > 0 && c.Scenario != ScenarioFanout {
		return errors.New("load: stalled subscribers are for the fanout scenario")
	}
	if c.MaxConnsPerWorker <= 0 {
		c.MaxConnsPerWorker = 8000
	}
	if c.Workers <= 0 {
		c.Workers = (c.Conns + c.MaxConnsPerWorker - 1) / c.MaxConnsPerWorker
	}
	c.Workers = max(1, min(c.Workers, c.Conns))
	if n := strings.Count(c.URL, ",") + 1; n > 1 {
		if c.Scenario != ScenarioGateway {
			return errors.New("load: several URLs are for the gateway scenario")
		}
		// A whole number of workers per URL: the clients spread evenly.
		c.Workers = (c.Workers + n - 1) / n * n
		if c.Conns < c.Workers {
			return fmt.Errorf("load: %d connections for %d URLs", c.Conns, n)
		}
	}
	if (c.CPUProfile != "" || c.HeapProfile != "") && c.Stats.URL == "" {
		return errors.New("load: profiles need the server's -stats URL (its /debug/pprof/ is next to /stats)")
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return nil
}

func (r *runner) run(ctx context.Context, timeout time.Duration) (*Result, error) {
	cfg := &r.cfg
	var (
		before, after ServerStats
		haveStats     = cfg.Stats.Available()
		res           = &Result{Scenario: cfg.Scenario, URL: cfg.URL, Deflate: cfg.Deflate, Takeover: cfg.Takeover, Conns: cfg.Conns, Workers: cfg.Workers}
	)
	if cfg.Scenario != ScenarioIdle && cfg.Scenario != ScenarioStorm {
		res.Size = cfg.Size
	}
	if cfg.Scenario == ScenarioEcho {
		res.InFlight = cfg.InFlight
	}
	if cfg.Scenario == ScenarioFanout {
		res.PubRate, res.Stalled = cfg.PubRate, cfg.Stalled
	}
	if cfg.Scenario == ScenarioGateway {
		res.PubRate, res.PubConcurrency = cfg.PubRate, cfg.PubConcurrency
	}
	if haveStats {
		var err error
		if before, err = cfg.Stats.Read(ctx, cfg.Scenario == ScenarioIdle); err != nil {
			return nil, err
		}
	}

	if err := r.spawn(timeout); err != nil {
		return nil, err
	}
	r.setPhase("connect")
	var step *ServerStats
	if r.step {
		if err := r.pump(ctx, time.Time{}, func() bool {
			return r.all(func(w *workerProc) bool { return w.stepped || w.ready })
		}); err != nil {
			return nil, fmt.Errorf("connect phase: %w", err)
		}
		st, err := cfg.Stats.Read(ctx, true)
		if err != nil {
			return nil, err
		}
		step = &st
		r.send("more")
	}
	if err := r.pump(ctx, time.Time{}, func() bool { return r.all(func(w *workerProc) bool { return w.ready }) }); err != nil {
		return nil, fmt.Errorf("connect phase: %w", err)
	}
	if cfg.Scenario != ScenarioStorm {
		var open int64
		var why []string
		for _, w := range r.workers {
			open += w.readyCounters.Open
			why = append(why, w.readySamples...)
		}
		if open == 0 {
			return nil, fmt.Errorf("no connection could be opened: %s", strings.Join(why, "; "))
		}
	}
	// gateway: RSS per subscribed client, from before the workers started
	// to when every client has subscribed.
	base := before
	var connected *ServerStats
	if cfg.Scenario == ScenarioGateway && haveStats {
		st, err := cfg.Stats.Read(ctx, true)
		if err != nil {
			return nil, err
		}
		connected = &st
	}
	var winStart, winEnd time.Time
	var profErr chan error
	if cfg.Scenario == ScenarioIdle {
		r.setPhase("hold")
		if err := r.pump(ctx, time.Now().Add(cfg.Hold), nil); err != nil {
			return nil, err
		}
		if haveStats {
			var err error
			if after, err = cfg.Stats.Read(ctx, true); err != nil {
				return nil, err
			}
		}
		if cfg.HeapProfile != "" {
			if err := r.profile(ctx, "heap", cfg.HeapProfile); err == nil {
				res.Profiles = append(res.Profiles, cfg.HeapProfile)
			}
		}
	} else {
		r.send("run")
		pubStop := make(chan struct{})
		pubDone := make(chan struct{})
		if cfg.Scenario == ScenarioGateway {
			r.pub = newAPIPublisher(cfg.Gateway, cfg.Size, cfg.PubConcurrency, r.epoch)
			go func() {
				defer close(pubDone)
				r.pub.run(cfg.PubRate, cfg.PubConcurrency, pubStop)
			}()
		} else {
			close(pubDone)
		}
		r.setPhase("warmup")
		if err := r.pump(ctx, time.Now().Add(cfg.Warmup), nil); err != nil {
			return nil, err
		}
		if haveStats {
			var err error
			if before, err = cfg.Stats.Read(ctx, false); err != nil {
				return nil, err
			}
		}
		r.send("measure")
		winStart = time.Now()
		if cfg.CPUProfile != "" {
			profErr = make(chan error, 1)
			secs := max(1, int(cfg.Duration.Round(time.Second)/time.Second))
			go func() {
				profErr <- r.profile(ctx, fmt.Sprintf("profile?seconds=%d", secs), cfg.CPUProfile)
			}()
		}
		r.setPhase("measure")
		if err := r.pump(ctx, winStart.Add(cfg.Duration), nil); err != nil {
			return nil, err
		}
		if haveStats {
			var err error
			if after, err = cfg.Stats.Read(ctx, false); err != nil {
				return nil, err
			}
		}
		r.send("stop")
		close(pubStop)
		<-pubDone
		winEnd = time.Now()
		if err := r.drain(ctx); err != nil {
			return nil, err
		}
		if cfg.HeapProfile != "" {
			if err := r.profile(ctx, "heap", cfg.HeapProfile); err == nil {
				res.Profiles = append(res.Profiles, cfg.HeapProfile)
			}
		}
		if profErr != nil {
			if err := <-profErr; err == nil {
				res.Profiles = append(res.Profiles, cfg.CPUProfile)
			} else {
				fmt.Fprintf(cfg.Stderr, "wsbench: cpu profile: %v\n", err)
			}
		}
	}
	r.send(fmt.Sprintf("close %d", r.lastPub))
	r.setPhase("close")
	if err := r.pump(ctx, time.Time{}, func() bool {
		return r.all(func(w *workerProc) bool { return w.result != nil || w.exited })
	}); err != nil {
		return nil, fmt.Errorf("collect results: %w", err)
	}
	for i, w := range r.workers {
		if w.result == nil {
			return nil, fmt.Errorf("worker %d ended without a result: %s", i, w.fatal)
		}
	}
	r.aggregate(res, winStart, winEnd)
	if haveStats {
		sf := &ServerFigures{Before: before, After: after}
		sf.CPUSeconds = after.CPUSeconds - before.CPUSeconds
		sf.Connected = connected
		if connected != nil {
			sf.Baseline = &base
		}
		switch cfg.Scenario {
		case ScenarioIdle:
			open := float64(res.Counters.Open)
			if open > 0 {
				if cfg.Stats.HasHeap() {
					sf.HeapPerConn = (float64(after.HeapInuse) - float64(before.HeapInuse)) / open
				}
				sf.RSSPerConn = (float64(after.RSSBytes) - float64(before.RSSBytes)) / open
			}
		case ScenarioStorm:
			if n := res.Counters.WinHandshakes; n > 0 {
				sf.CPUPerMsgUs = sf.CPUSeconds / float64(n) * 1e6
			}
		case ScenarioGateway:
			if n := res.Counters.Subscribed; n > 0 && connected != nil {
				sf.RSSPerConn = (float64(connected.RSSBytes) - float64(base.RSSBytes)) / float64(n)
				if step != nil {
					for _, w := range r.workers {
						sf.StepClients += w.stepCounters.Subscribed
					}
					sf.Step = step
					if added := n - sf.StepClients; added > 0 {
						sf.RSSPerAdded = (float64(connected.RSSBytes) - float64(step.RSSBytes)) / float64(added)
					}
				}
			}
			if n := res.Counters.WinRecv; n > 0 {
				sf.CPUPerMsgUs = sf.CPUSeconds / float64(n) * 1e6
			}
		default:
			if n := res.Counters.WinRecv; n > 0 {
				sf.CPUPerMsgUs = sf.CPUSeconds / float64(n) * 1e6
			}
		}
		if res.WindowSec > 0 {
			sf.CPUUtilization = sf.CPUSeconds / res.WindowSec
		}
		res.Server = sf
	}
	return res, nil
}

// profile fetches a pprof profile from the admin server next to /stats.
func (r *runner) profile(ctx context.Context, name, path string) error {
	base := strings.TrimSuffix(r.cfg.Stats.URL, "/stats") + "/debug/pprof/"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return FetchProfile(ctx, base, name, path)
}

// aggregate sums the workers' results into res.
func (r *runner) aggregate(res *Result, winStart, winEnd time.Time) {
	var (
		lat, hs   Histogram
		firstDial int64
		lastHS    int64
		seen      = map[string]bool{}
	)
	for _, w := range r.workers {
		ev := w.result
		res.Counters.add(&ev.Counters)
		if ev.Lat != nil {
			lat.MergeData(*ev.Lat)
		}
		if ev.HS != nil {
			hs.MergeData(*ev.HS)
		}
		if ev.FirstDial != 0 && (firstDial == 0 || ev.FirstDial < firstDial) {
			firstDial = ev.FirstDial
		}
		lastHS = max(lastHS, ev.LastHS)
		res.ClientCPUSeconds += ev.CPUSeconds
		for _, s := range ev.Samples {
			if !seen[s] && len(res.Samples) < 2*maxSamples {
				seen[s] = true
				res.Samples = append(res.Samples, s)
			}
		}
	}
	// Open and Stalled were gauges at the end (after closing); report
	// what was open when the connect phase ended instead.
	res.Counters.Open, res.Counters.Stalled = 0, 0
	for _, w := range r.workers {
		res.Counters.Open += w.readyOpen()
		if w.result != nil {
			res.Counters.Stalled += w.readyCounters.Stalled
		}
	}
	if r.pub != nil {
		res.Counters.Sent = r.pub.sent.Load()
		res.Published, res.PubFailed = r.pub.sent.Load(), r.pub.failed.Load()
		res.PubErrors = r.pub.errs
	}
	res.Errors = res.Counters.Errors() + res.PubFailed
	if !winStart.IsZero() {
		// The coordinator's window brackets the server's CPU reading;
		// the workers' windows agree with it to within a pipe's latency.
		res.WindowSec = winEnd.Sub(winStart).Seconds()
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	switch r.cfg.Scenario {
	case ScenarioIdle:
		if lastHS > firstDial && firstDial > 0 {
			res.HandshakesPerSec = float64(res.Counters.Handshakes) / (float64(lastHS-firstDial) / 1e9)
		}
	case ScenarioStorm:
		if res.WindowSec > 0 {
			res.HandshakesPerSec = float64(res.Counters.WinHandshakes) / res.WindowSec
		}
	default:
		if res.WindowSec > 0 {
			res.MsgsPerSec = float64(res.Counters.WinRecv) / res.WindowSec
		}
		res.LatP50, res.LatP99, res.LatP999 = us(lat.Percentile(50)), us(lat.Percentile(99)), us(lat.Percentile(99.9))
		res.LatMax, res.LatMean = us(lat.Max()), lat.Mean()/1e3
	}
	res.HandshakeP50, res.HandshakeP99 = us(hs.Percentile(50)), us(hs.Percentile(99))
}

// readyOpen is the open gauge the worker reported when it became ready
// (storm: 0).
func (w *workerProc) readyOpen() int64 {
	if w.result == nil {
		return 0
	}
	return w.readyCounters.Open
}

// spawn starts the workers and their readers.
func (r *runner) spawn(timeout time.Duration) error {
	cfg := &r.cfg
	epoch := r.epoch
	var hello string
	if cfg.Scenario == ScenarioGateway {
		var err error
		if hello, err = gatewayHello(cfg.Gateway); err != nil {
			return err
		}
	}
	urls := strings.Split(cfg.URL, ",")
	per := cfg.Conns / cfg.Workers
	extra := cfg.Conns % cfg.Workers
	for i := range cfg.Workers {
		n := per
		if i < extra {
			n++
		}
		stalled := cfg.Stalled / cfg.Workers
		if i < cfg.Stalled%cfg.Workers {
			stalled++
		}
		spec := Spec{
			Scenario:         cfg.Scenario,
			URL:              urls[i%len(urls)],
			Headers:          cfg.Headers,
			Subprotocol:      cfg.Subprotocol,
			Deflate:          cfg.Deflate,
			Takeover:         cfg.Takeover,
			Conns:            n,
			Step:             r.stepOf(n),
			Publisher:        cfg.Scenario == ScenarioFanout && i == 0,
			Stalled:          stalled,
			DialRate:         cfg.DialRate / float64(cfg.Workers),
			Dialers:          cfg.Dialers,
			Size:             cfg.Size,
			InFlight:         cfg.InFlight,
			Text:             cfg.Text,
			PubRate:          cfg.PubRate,
			Epoch:            epoch,
			Hello:            hello,
			Loops:            cfg.Loops,
			HandshakeTimeout: 10 * time.Second,
			Lifetime:         timeout + 10*time.Second,
		}
		// Each worker takes its own slice of the source addresses when
		// there are enough, so workers do not compete for ports.
		if src := cfg.Sources; len(src) > 0 {
			if len(src) >= cfg.Workers {
				for j := i; j < len(src); j += cfg.Workers {
					spec.Sources = append(spec.Sources, src[j])
				}
			} else {
				spec.Sources = src
			}
		}
		if err := r.startWorker(i, spec); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) startWorker(i int, spec Spec) error {
	var cmd *exec.Cmd
	if r.cfg.WorkerCmd != nil {
		cmd = r.cfg.WorkerCmd()
	} else {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cmd = exec.Command(exe)
	}
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = r.cfg.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w := &workerProc{cmd: cmd, stdin: stdin}
	r.workers = append(r.workers, w)
	b, _ := json.Marshal(spec)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("worker %d: %w", i, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = Event{E: "fatal", Err: "bad event: " + err.Error()}
			}
			r.events <- workerEvent{i: i, ev: ev}
		}
		r.events <- workerEvent{i: i, eof: true}
	}()
	return nil
}

// send writes a command to every worker.
func (r *runner) send(cmd string) {
	for _, w := range r.workers {
		_, _ = io.WriteString(w.stdin, cmd+"\n")
	}
}

// kill ends the workers: closing stdin asks them to wind down; those still
// running after a grace period are killed.
func (r *runner) kill() {
	for _, w := range r.workers {
		_ = w.stdin.Close()
	}
	done := make(chan struct{})
	go func() {
		for _, w := range r.workers {
			_ = w.cmd.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, w := range r.workers {
			_ = w.cmd.Process.Kill()
		}
		<-done
	}
}

func (r *runner) all(f func(*workerProc) bool) bool {
	for _, w := range r.workers {
		if !f(w) {
			return false
		}
	}
	return true
}

func (r *runner) setPhase(p string) {
	r.phase = p
}

// pump handles worker events and prints progress until done() holds (if
// done is set) or until the deadline (if not zero).
func (r *runner) pump(ctx context.Context, deadline time.Time, done func() bool) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	for done == nil || !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer:
			return nil
		case <-tick.C:
			r.progress()
		case we := <-r.events:
			w := r.workers[we.i]
			switch {
			case we.eof:
				w.exited = true
				if w.result == nil && done == nil {
					return fmt.Errorf("worker %d exited: %s", we.i, w.fatal)
				}
			case we.ev.E == "progress":
				w.last = we.ev.Counters
			case we.ev.E == "step":
				w.last = we.ev.Counters
				w.stepCounters = we.ev.Counters
				w.stepped = true
			case we.ev.E == "ready":
				w.last = we.ev.Counters
				w.readyCounters = we.ev.Counters
				w.readySamples = we.ev.Samples
				w.ready = true
			case we.ev.E == "stopped":
				w.last = we.ev.Counters
				w.stopped = true
			case we.ev.E == "result":
				ev := we.ev
				w.result = &ev
				w.last = ev.Counters
			case we.ev.E == "fatal":
				w.fatal = we.ev.Err
				return fmt.Errorf("worker %d: %s", we.i, we.ev.Err)
			}
			if we.eof && !w.ready {
				return fmt.Errorf("worker %d exited before connecting: %s", we.i, w.fatal)
			}
		}
	}
	return nil
}

// drain waits, after "stop", until every worker has stopped sending and
// the messages in flight have arrived (nothing received for 400 ms, at
// most 3 s), so that what is still missing then is lost.
func (r *runner) drain(ctx context.Context) error {
	r.setPhase("drain")
	if err := r.pump(ctx, time.Now().Add(10*time.Second), func() bool {
		return r.all(func(w *workerProc) bool { return w.stopped })
	}); err != nil {
		return err
	}
	switch r.cfg.Scenario {
	case ScenarioFanout:
		r.lastPub = r.workers[0].last.Sent
	case ScenarioGateway:
		r.lastPub = int64(r.pub.lastOff.Load())
	}
	recv := func() int64 {
		var n int64
		for _, w := range r.workers {
			n += w.last.Recv
		}
		return n
	}
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		n := recv()
		if err := r.pump(ctx, time.Now().Add(400*time.Millisecond), nil); err != nil {
			return err
		}
		if recv() == n {
			break
		}
	}
	return nil
}

// progress prints one line: connections, messages and errors so far.
func (r *runner) progress() {
	if r.cfg.Progress == nil {
		return
	}
	var c Counters
	for _, w := range r.workers {
		c.add(&w.last)
	}
	now := time.Now()
	n, unit := c.Recv, "msgs"
	if r.cfg.Scenario == ScenarioStorm || r.cfg.Scenario == ScenarioIdle {
		n, unit = c.Handshakes, "handshakes"
	}
	rate := float64(n-r.lastN) / now.Sub(r.lastP).Seconds()
	r.lastP, r.lastN = now, n
	label := r.cfg.Label
	if label == "" {
		label = r.cfg.Scenario
	}
	fmt.Fprintf(r.cfg.Progress, "wsbench %-24s %5.1fs %-7s conns %d open, %d failed  %s %d (%.0f/s)  errors %d\n",
		label, now.Sub(r.start).Seconds(), r.phase, c.Open, c.HSFailed, unit, n, rate, c.Errors())
}

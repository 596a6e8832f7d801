// Command wsbench load-tests a WebSocket server, or compares wsgate with
// its peers.
//
// Load-test any server:
//
//	wsbench -url ws://127.0.0.1:8080/ -scenario echo -conns 100 -size 64 -duration 10s
//	wsbench -url ws://127.0.0.1:8080/ws -scenario idle -conns 10000 -stats http://127.0.0.1:6060/stats
//	wsbench -url ws://10.0.0.5:80/feed -scenario fanout -conns 5000 -rate 20 -pid 4242
//
// Scenarios: idle (hold N connections; server heap and RSS per connection,
// handshakes/s), echo (messages/s, round-trip percentiles, server CPU per
// message), fanout (a publisher sends "BCAST <msg>" at -rate; the server
// must send <msg> to every connection; deliveries/s, publish-to-receive
// percentiles), storm (connect/close churn; handshakes/s, failures) and
// gateway (clients of a server speaking Centrifugo's client protocol
// connect with a JWT and subscribe to one channel; -rate publishes/s go
// through its HTTP API, at most -pub-concurrency in flight; deliveries/s,
// publish-to-receive percentiles, server RSS per subscribed client and
// CPU per delivery). Every received message is checked (length, sequence,
// every byte; gateway: the publication data and contiguous channel
// offsets); only complete, correct messages count.
//
//	wsbench -scenario gateway -url ws://127.0.0.1:8000/connection/websocket \
//	    -api http://127.0.0.1:9000/api -api-key KEY -secret SECRET \
//	    -channel feed:bench -conns 200 -rate 20 -pid 4242
//
// Server memory and CPU come from -stats (the JSON of cmd/wsgate's admin
// /stats) or -pid (a process on this machine); without either, only the
// client's figures are reported.
//
// Compare wsgate with the peer servers in bench/peers:
//
//	wsbench compare -out results          # the full comparison
//	wsbench compare -quick -out /tmp/q    # a smoke run
//
// -compression lists the compression modes: off, on (permessage-deflate
// without context takeover) and takeover (the client lets the server keep
// its context and inflates with each connection's window; servers run
// with -deflate -deflate-takeover). Fan-out of ticks with and without it:
//
//	wsbench compare -servers wsgate,gws,nbio -scenarios fanout -fanout-subs 10000 \
//	    -fanout-rate 20 -fanout-size 150 -fanout-stalled 0 -compression off,takeover -out /tmp/tk
//
// The gateway case runs Centrifugo (and wsgate's gateway, with -gateways
// centrifugo,wsgate-gateway) beside wsgate's raw broadcast of messages as
// large as the gateway's pushes:
//
//	wsbench compare -servers wsgate -scenarios gateway -gateways centrifugo,wsgate-gateway \
//	    -fanout-subs 10000 -fanout-rate 20 -fanout-size 256 -out results-gateway
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

func main() {
	if load.IsWorker() {
		load.WorkerMain()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		err = compareMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
	} else {
		err = runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "wsbench:", err)
		}
		os.Exit(1)
	}
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// scenarioDefaults are the sizes of a full run.
var scenarioDefaults = map[string]struct {
	conns    int
	duration time.Duration
}{
	load.ScenarioIdle:    {10000, 0},
	load.ScenarioEcho:    {100, 10 * time.Second},
	load.ScenarioFanout:  {10000, 10 * time.Second},
	load.ScenarioStorm:   {64, 10 * time.Second},
	load.ScenarioGateway: {10000, 10 * time.Second},
	scenarioCluster:      {9000, 10 * time.Second},
}

// runMain is a single run against -url.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       load.Config
		headers   listFlag
		pid       int
		sources   int
		sourceIPs string
		jsonOut   string
		quiet     bool
		gw        load.GatewayTarget
		natsMon   string
		pids      string
	)
	fs.StringVar(&cfg.URL, "url", "", "server URL, ws://host:port/path (required)")
	fs.StringVar(&cfg.Scenario, "scenario", "echo", "idle, echo, fanout, storm, gateway or cluster (gateway over several nodes' comma-separated -url)")
	fs.Var(&headers, "header", "extra request header `K:V` (repeatable)")
	fs.StringVar(&cfg.Subprotocol, "subprotocol", "", "offer this Sec-WebSocket-Protocol; the server must accept it")
	fs.BoolVar(&cfg.Deflate, "deflate", false, "offer permessage-deflate (no context takeover); the server must accept it")
	fs.BoolVar(&cfg.Takeover, "deflate-takeover", false, "with -deflate: let the server keep its context; inflate with each connection's window (up to 40 KiB per connection)")
	fs.IntVar(&cfg.Conns, "conns", 0, "connections (idle 10000, echo 100), subscribers (fanout 10000) or connections in flight (storm 64); 0: that default")
	fs.IntVar(&cfg.Size, "size", 64, "message size in bytes (>= 24)")
	fs.IntVar(&cfg.InFlight, "inflight", 1, "echo: messages in flight per connection")
	fs.BoolVar(&cfg.Text, "text", false, "echo: send text messages instead of binary")
	fs.Float64Var(&cfg.PubRate, "rate", 10, "fanout: broadcasts per second; gateway: API publishes per second")
	fs.StringVar(&gw.API, "api", "", "gateway: the server HTTP API, http://host:port/api")
	fs.StringVar(&gw.APIKey, "api-key", "", "gateway: the HTTP API key (X-API-Key)")
	fs.StringVar(&gw.Secret, "secret", "", "gateway: HMAC secret for the clients' HS256 connection tokens")
	fs.StringVar(&gw.Channel, "channel", "", "gateway: the channel to subscribe and publish to (its namespace must keep history; default feed:wsbench-<time>)")
	fs.IntVar(&cfg.PubConcurrency, "pub-concurrency", 8, "gateway: publish requests in flight at most")
	fs.IntVar(&cfg.Stalled, "stalled", 0, "fanout: extra subscribers that upgrade and then never read (a 4 KiB receive buffer)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measuring window of echo, fanout and storm (0: 10s)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "traffic before the window opens")
	fs.DurationVar(&cfg.Hold, "hold", 2*time.Second, "idle: hold the connections this long before measuring")
	fs.Float64Var(&cfg.DialRate, "dial-rate", 5000, "connections opened per second while connecting (0: unlimited)")
	fs.IntVar(&cfg.Workers, "workers", 0, "worker processes (0: one per 8000 connections)")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops per worker (0: 2)")
	fs.IntVar(&sources, "sources", 4, "for a loopback target, dial from this many addresses 127.0.0.2…")
	fs.StringVar(&sourceIPs, "source-ips", "", "comma-separated local addresses to dial from (overrides -sources)")
	fs.StringVar(&cfg.Stats.URL, "stats", "", "server stats URL (JSON as cmd/wsgate's admin /stats) for memory and CPU")
	fs.IntVar(&pid, "pid", 0, "server process on this machine, for RSS and CPU from /proc")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "save the server's CPU profile of the window here (from /debug/pprof/ next to -stats)")
	fs.StringVar(&cfg.HeapProfile, "heapprofile", "", "save the server's heap profile after the window here")
	fs.StringVar(&natsMon, "nats-monitor", "", "cluster: nats-server's monitoring base URL, for NATS messages per publication")
	fs.StringVar(&pids, "pids", "", "cluster: the nodes' process ids, comma-separated, for their CPU per delivery")
	fs.StringVar(&jsonOut, "json", "", "also write the result as JSON to this file")
	fs.BoolVar(&quiet, "quiet", false, "no live progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.URL == "" {
		fs.Usage()
		return errors.New("-url is required")
	}
	d, ok := scenarioDefaults[cfg.Scenario]
	if !ok {
		return fmt.Errorf("unknown -scenario %q", cfg.Scenario)
	}
	if cfg.Conns == 0 {
		cfg.Conns = d.conns
	}
	if cfg.Duration == 0 {
		cfg.Duration = d.duration
	}
	cfg.Headers = headers
	cfg.Stats.PID = pid
	cluster := cfg.Scenario == scenarioCluster
	if cluster {
		if !strings.Contains(cfg.URL, ",") {
			return errors.New("-scenario cluster: -url lists the nodes, comma-separated")
		}
		cfg.Scenario = load.ScenarioGateway
	}
	if cfg.Scenario == load.ScenarioGateway {
		if gw.Channel == "" {
			gw.Channel = fmt.Sprintf("feed:wsbench-%d", time.Now().UnixNano())
		}
		cfg.Gateway = &gw
	}
	if sourceIPs != "" {
		cfg.Sources = strings.Split(sourceIPs, ",")
	} else {
		first, _, _ := strings.Cut(cfg.URL, ",")
		t, err := load.ParseTarget(first)
		if err != nil {
			return err
		}
		cfg.Sources = load.DefaultSources(t, sources)
	}
	if !quiet {
		cfg.Progress = stderr
	}
	probe, err := newClusterProbe(natsMon, pids)
	if err != nil {
		return err
	}
	before, err := probe.snap()
	if err != nil {
		return err
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	printResult(stdout, res)
	if cluster {
		after, err := probe.snap()
		if err != nil {
			return err
		}
		printCluster(stdout, res, probe, before, after)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if res.Errors > 0 || res.Counters.HSFailed > 0 {
		return fmt.Errorf("%d verification or protocol errors, %d failed connections", res.Errors, res.Counters.HSFailed)
	}
	return nil
}

// printResult writes a human-readable summary.
func printResult(w io.Writer, r *load.Result) {
	c := r.Counters
	fmt.Fprintf(w, "scenario   %s  %s  deflate=%v  workers=%d\n", r.Scenario, r.URL, r.Deflate, r.Workers)
	if r.Takeover {
		fmt.Fprintf(w, "takeover   offered; %d of %d handshakes kept the server's context\n", r.Counters.Takeover, r.Counters.Handshakes)
	}
	fmt.Fprintf(w, "conns      %d requested, %d open, %d handshakes, %d failed", r.Conns, c.Open, c.Handshakes, c.HSFailed)
	if r.HandshakesPerSec > 0 {
		fmt.Fprintf(w, ", %.0f handshakes/s", r.HandshakesPerSec)
	}
	fmt.Fprintf(w, " (handshake p50 %s, p99 %s)\n", fmtUs(r.HandshakeP50), fmtUs(r.HandshakeP99))
	if r.Stalled > 0 {
		fmt.Fprintf(w, "stalled    %d requested, %d open (upgraded, then never read)\n", r.Stalled, c.Stalled)
	}
	switch r.Scenario {
	case load.ScenarioEcho, load.ScenarioFanout, load.ScenarioGateway:
		what := "round trips"
		if r.Scenario != load.ScenarioEcho {
			what = "deliveries"
		}
		if r.Scenario == load.ScenarioGateway {
			fmt.Fprintf(w, "publish    %d accepted by the API, %d failed, at %g/s with at most %d in flight (concurrent, not batched); %d clients subscribed\n",
				r.Published, r.PubFailed, r.PubRate, r.PubConcurrency, c.Subscribed)
			for _, e := range r.PubErrors {
				fmt.Fprintf(w, "           %s\n", e)
			}
		}
		fmt.Fprintf(w, "messages   %d %s in %.1fs = %.0f/s, %d sent in all\n", c.WinRecv, what, r.WindowSec, r.MsgsPerSec, c.Sent)
		fmt.Fprintf(w, "latency    p50 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
			fmtUs(r.LatP50), fmtUs(r.LatP99), fmtUs(r.LatP999), fmtUs(r.LatMax), fmtUs(r.LatMean))
	case load.ScenarioStorm:
		fmt.Fprintf(w, "storm      %d handshakes and %d failures in %.1fs\n", c.WinHandshakes, c.WinHSFailed, r.WindowSec)
	}
	fmt.Fprintf(w, "errors     %d (payload %d, order %d, lost %d, protocol %d, dropped %d)\n",
		r.Errors, c.BadPayload, c.BadOrder, c.Lost, c.Protocol, c.Dropped)
	for _, s := range r.Samples {
		fmt.Fprintf(w, "           %s\n", s)
	}
	if s := r.Server; s != nil {
		if r.Scenario == load.ScenarioGateway && s.Connected != nil && s.Baseline != nil {
			fmt.Fprintf(w, "server     RSS %s → %s with %d clients subscribed (%.0f B/client)\n",
				fmtBytes(float64(s.Baseline.RSSBytes)), fmtBytes(float64(s.Connected.RSSBytes)), c.Subscribed, s.RSSPerConn)
			if s.Step != nil {
				fmt.Fprintf(w, "           %s with the first %d: %.0f B per client added after them\n",
					fmtBytes(float64(s.Step.RSSBytes)), s.StepClients, s.RSSPerAdded)
			}
		}
		if r.Scenario == load.ScenarioIdle {
			fmt.Fprintf(w, "server     %d conns; heap %s → %s (%.0f B/conn), RSS %s → %s (%.0f B/conn)\n",
				s.After.Conns, fmtBytes(float64(s.Before.HeapInuse)), fmtBytes(float64(s.After.HeapInuse)), s.HeapPerConn,
				fmtBytes(float64(s.Before.RSSBytes)), fmtBytes(float64(s.After.RSSBytes)), s.RSSPerConn)
		} else {
			fmt.Fprintf(w, "server     CPU %.2fs in the window (%.2f cores), %.2f µs per %s; RSS %s\n",
				s.CPUSeconds, s.CPUUtilization, s.CPUPerMsgUs, unitOf(r.Scenario), fmtBytes(float64(s.After.RSSBytes)))
		}
	} else {
		fmt.Fprintf(w, "server     no -stats or -pid: client-side figures only\n")
	}
	fmt.Fprintf(w, "client     CPU %.2fs (all workers)\n", r.ClientCPUSeconds)
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "profile    %s\n", p)
	}
}

func unitOf(scenario string) string {
	switch scenario {
	case load.ScenarioFanout, load.ScenarioGateway:
		return "delivery"
	case load.ScenarioStorm:
		return "handshake"
	}
	return "message"
}

func fmtUs(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

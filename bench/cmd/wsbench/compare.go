package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/gateway"
	"github.com/wsgate/wsgate/bench/load"
)

// allServers is every server compare knows, wsgate first: it is the
// baseline of every ratio.
var allServers = []string{"wsgate", "gws", "nbio", "gorilla", "gobwas-gnet"}

// Servers of the gateway case: Centrifugo (v6.9.1, installed by
// .ci/centrifugo.sh) and wsgate's gateway (cmd/wsgate). The case's
// baseline row, "wsgate", is the library's raw broadcast (wsgate echo
// -broadcast) of messages as large as the gateway's pushes.
const (
	gwCentrifugo = "centrifugo"
	gwWsgate     = "wsgate-gateway"
)

// gatewayChannel is the channel of the gateway case (a namespace with
// history, so offsets count publications).
const gatewayChannel = gateway.NSFeed + ":wsbench"

// gatewayPushSize is the size of the JSON push that carries a
// publication of size bytes on gatewayChannel with a three-digit offset.
func gatewayPushSize(size int) int {
	return len(`{"push":{"channel":"`+gatewayChannel+`","pub":{"data":`) + size + len(`,"offset":123}}}`)
}

// benchCase is one column of the comparison: a scenario with its sizes and
// compression setting.
type benchCase struct {
	Name     string `json:"name"` // e.g. "echo 64 B"
	Scenario string `json:"scenario"`
	Size     int    `json:"size,omitempty"`
	Deflate  bool   `json:"deflate"`
	Takeover bool   `json:"takeover,omitempty"` // with Deflate: server context takeover offered
	Stalled  int    `json:"stalled,omitempty"`  // fanout: subscribers among FanoutSubs that never read
}

func (c benchCase) id() string {
	s := strings.NewReplacer(" ", "", "%", "pct").Replace(c.Name)
	if c.Deflate {
		s += "-deflate"
	}
	if c.Takeover {
		s += "-takeover"
	}
	return s
}

func (c benchCase) label() string {
	switch {
	case c.Takeover:
		return c.Name + ", deflate takeover"
	case c.Deflate:
		return c.Name + ", deflate"
	}
	return c.Name
}

// compression is one -compression mode.
type compression struct{ deflate, takeover bool }

// compressionModes parses -compression: a comma-separated list of off, on
// (permessage-deflate without context takeover) and takeover (server
// context takeover offered), or both (off,on).
func compressionModes(s string) ([]compression, error) {
	var modes []compression
	for _, m := range splitList(s) {
		switch m {
		case "off":
			modes = append(modes, compression{})
		case "on":
			modes = append(modes, compression{deflate: true})
		case "takeover":
			modes = append(modes, compression{deflate: true, takeover: true})
		case "both":
			modes = append(modes, compression{}, compression{deflate: true})
		default:
			return nil, fmt.Errorf("-compression %q: want a list of off, on, takeover, or both", s)
		}
	}
	if len(modes) == 0 {
		return nil, errors.New("-compression: empty")
	}
	return modes, nil
}

// record is one server through one case.
type record struct {
	Server  string       `json:"server"`
	Case    benchCase    `json:"case"`
	Result  *load.Result `json:"result,omitempty"`
	Skipped string       `json:"skipped,omitempty"` // why the case did not run
	Error   string       `json:"error,omitempty"`   // why the run failed
}

// report is the results JSON.
type report struct {
	Command  string            `json:"command"`
	Date     string            `json:"date"`
	Elapsed  string            `json:"elapsed"`
	Machine  map[string]string `json:"machine"`
	Settings compareSettings   `json:"settings"`
	Servers  []string          `json:"servers"`
	Missing  map[string]string `json:"missing,omitempty"` // servers not built, and why
	Records  []record          `json:"records"`
}

// compareSettings are the sizes of the comparison.
type compareSettings struct {
	Quick       bool          `json:"quick"`
	IdleConns   int           `json:"idle_conns"`
	EchoConns   int           `json:"echo_conns"`
	EchoSizes   []int         `json:"echo_sizes"`
	InFlight    int           `json:"inflight"`
	FanoutSubs  int           `json:"fanout_subscribers"`
	FanoutRate  float64       `json:"fanout_rate"`
	FanoutSize  int           `json:"fanout_size"`
	Stalled     float64       `json:"fanout_stalled"`
	StormConns  int           `json:"storm_conns"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Hold        time.Duration `json:"hold_ns"`
	DialRate    float64       `json:"dial_rate"`
	ServerLoops int           `json:"server_loops"`
	Compression string        `json:"compression"`
}

func compareMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		st          compareSettings
		out         = fs.String("out", "results", "output directory for results.json, results.md, the SVG charts and profiles")
		servers     = fs.String("servers", strings.Join(allServers, ","), "servers to compare; peers without a directory in bench/peers are skipped")
		scenarios   = fs.String("scenarios", "idle,echo,fanout,storm,gateway", "scenarios to run")
		gateways    = fs.String("gateways", gwCentrifugo, "servers of the gateway case: centrifugo, wsgate-gateway (beside wsgate's raw broadcast)")
		benchDir    = fs.String("bench-dir", "", "the bench module directory (default: found from the working directory)")
		cpuProfile  = fs.Bool("cpuprofile", false, "save each server's CPU profile of every measuring window in <out>/profiles")
		heapProfile = fs.Bool("heapprofile", false, "save each server's heap profile at the end of every run in <out>/profiles")
		profServers = fs.String("profile-servers", "", "profile only these servers (default: all)")
		echoSizes   = fs.String("echo-sizes", "", "echo message sizes in bytes (default 64,4096)")
		quiet       = fs.Bool("quiet", false, "no live progress")
	)
	fs.BoolVar(&st.Quick, "quick", false, "tiny sizes for CI: 50 connections, about 1 s per scenario")
	fs.IntVar(&st.IdleConns, "idle-conns", 0, "idle connections (default 10000; quick 50)")
	fs.IntVar(&st.EchoConns, "echo-conns", 0, "echo connections (default 100; quick 50)")
	fs.IntVar(&st.InFlight, "inflight", 1, "echo messages in flight per connection")
	fs.IntVar(&st.FanoutSubs, "fanout-subs", 0, "fanout subscribers (default 10000; quick 50)")
	fs.Float64Var(&st.FanoutRate, "fanout-rate", 0, "broadcasts per second (default 10; quick 50)")
	fs.IntVar(&st.FanoutSize, "fanout-size", 64, "broadcast message size in bytes")
	fs.Float64Var(&st.Stalled, "fanout-stalled", 0.1, "fanout is run again with this fraction of the subscribers stalled (never reading); 0: not")
	fs.IntVar(&st.StormConns, "storm-conns", 0, "storm connections in flight (default 64; quick 8)")
	fs.DurationVar(&st.Duration, "duration", 0, "measuring window (default 10s; quick 1s)")
	fs.DurationVar(&st.Warmup, "warmup", 0, "traffic before the window (default 1s; quick 300ms)")
	fs.DurationVar(&st.Hold, "hold", 0, "idle hold before measuring memory (default 2s; quick 500ms)")
	fs.Float64Var(&st.DialRate, "dial-rate", 5000, "connections per second while connecting")
	fs.IntVar(&st.ServerLoops, "server-loops", 0, "-loops passed to every server (0: each server's default, GOMAXPROCS)")
	fs.StringVar(&st.Compression, "compression", "both", "comma-separated: off, on (deflate, no context takeover), takeover (deflate, server context takeover offered); both is off,on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st.defaults(*echoSizes)
	compress, err := compressionModes(st.Compression)
	if err != nil {
		return err
	}
	dir, err := findBenchDir(*benchDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	outAbs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "wsbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)

	started := time.Now()
	rep := &report{
		Command:  "wsbench compare " + strings.Join(args, " "),
		Date:     time.Now().UTC().Format(time.RFC3339),
		Machine:  machine(),
		Settings: st,
		Missing:  map[string]string{},
	}
	bins := map[string]string{}
	for _, name := range splitList(*servers) {
		bin, why := buildServer(ctx, dir, binDir, name, stderr)
		if why != "" {
			rep.Missing[name] = why
			fmt.Fprintf(stderr, "wsbench compare: skipping %s: %s\n", name, why)
			continue
		}
		bins[name] = bin
		rep.Servers = append(rep.Servers, name)
	}
	if len(rep.Servers) == 0 {
		return errors.New("compare: no server could be built")
	}
	var gwServers []string
	if strings.Contains(","+*scenarios+",", ","+load.ScenarioGateway+",") {
		for _, name := range splitList(*gateways) {
			bin, why := gatewayBinary(ctx, dir, binDir, name, bins, stderr)
			if why != "" {
				rep.Missing[name] = why
				fmt.Fprintf(stderr, "wsbench compare: skipping %s: %s\n", name, why)
				continue
			}
			bins[name] = bin
			gwServers = append(gwServers, name)
		}
	}
	profiled := map[string]bool{}
	for _, s := range splitList(*profServers) {
		profiled[s] = true
	}

	var cases []benchCase
	for _, sc := range splitList(*scenarios) {
		for _, m := range compress {
			z, tk := m.deflate, m.takeover
			switch sc {
			case load.ScenarioIdle:
				cases = append(cases, benchCase{Name: "idle", Scenario: sc, Deflate: z, Takeover: tk})
			case load.ScenarioEcho:
				for _, size := range st.EchoSizes {
					cases = append(cases, benchCase{Name: "echo " + sizeName(size), Scenario: sc, Size: size, Deflate: z, Takeover: tk})
				}
			case load.ScenarioFanout:
				cases = append(cases, benchCase{Name: "fanout", Scenario: sc, Size: st.FanoutSize, Deflate: z, Takeover: tk})
				if n := int(st.Stalled * float64(st.FanoutSubs)); n > 0 && n < st.FanoutSubs {
					cases = append(cases, benchCase{Name: fmt.Sprintf("fanout %g%% stalled", 100*st.Stalled),
						Scenario: sc, Size: st.FanoutSize, Deflate: z, Takeover: tk, Stalled: n})
				}
			case load.ScenarioStorm:
				cases = append(cases, benchCase{Name: "storm", Scenario: sc, Deflate: z, Takeover: tk})
			case load.ScenarioGateway:
				if !z && len(gwServers) > 0 {
					cases = append(cases, benchCase{Name: "gateway", Scenario: sc, Size: st.FanoutSize})
				}
			default:
				return fmt.Errorf("compare: unknown scenario %q", sc)
			}
		}
	}

	noDeflate := map[string]string{}
	progress := stderr
	if *quiet {
		progress = nil
	}
	// Case by case, every server in turn, so that slow drifts of the
	// machine's load spread over all servers alike.
	for _, c := range cases {
		servers := rep.Servers
		if c.Scenario == load.ScenarioGateway {
			servers = nil
			if bins["wsgate"] != "" {
				servers = append(servers, "wsgate")
			}
			servers = append(servers, gwServers...)
		}
		for _, name := range servers {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := record{Server: name, Case: c}
			if why, ok := noDeflate[name]; ok && c.Deflate {
				rec.Skipped = why
				rep.Records = append(rep.Records, rec)
				continue
			}
			var cpuPath, heapPath string
			if len(profiled) == 0 || profiled[name] {
				base := filepath.Join(outAbs, "profiles", name+"_"+c.id())
				if *cpuProfile && c.Scenario != load.ScenarioIdle {
					cpuPath = base + ".cpu.pprof"
				}
				if *heapProfile {
					heapPath = base + ".heap.pprof"
				}
			}
			var (
				res  *load.Result
				skip string
				err  error
			)
			switch {
			case c.Scenario == load.ScenarioGateway && name == "wsgate":
				raw := benchCase{Name: c.Name, Scenario: load.ScenarioFanout, Size: gatewayPushSize(c.Size)}
				res, skip, err = runCase(ctx, bins[name], name, raw, &st, cpuPath, heapPath, progress, stderr)
			case c.Scenario == load.ScenarioGateway:
				res, err = runGatewayCase(ctx, bins[name], name, c, &st, progress, stderr)
			default:
				res, skip, err = runCase(ctx, bins[name], name, c, &st, cpuPath, heapPath, progress, stderr)
			}
			switch {
			case skip != "":
				rec.Skipped = skip
				if c.Deflate {
					noDeflate[name] = skip
				}
				fmt.Fprintf(stderr, "wsbench compare: %s %s: skipped: %s\n", name, c.label(), skip)
			case err != nil:
				rec.Error = err.Error()
				fmt.Fprintf(stderr, "wsbench compare: %s %s: %v\n", name, c.label(), err)
			}
			if res != nil {
				for i, p := range res.Profiles {
					if rel, err := filepath.Rel(outAbs, p); err == nil {
						res.Profiles[i] = rel
					}
				}
			}
			rec.Result = res
			rep.Records = append(rep.Records, rec)
			// Let the sockets of the last run leave TIME_WAIT-heavy states
			// and the machine settle a moment.
			time.Sleep(300 * time.Millisecond)
		}
	}

	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Machine["loadavg at end"] = strings.TrimSpace(string(b))
	}
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	if err := os.WriteFile(filepath.Join(*out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	for name, svg := range charts(rep) {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, md)
	return nil
}

func (st *compareSettings) defaults(echoSizes string) {
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if st.Quick {
				*v = quick
			}
		}
	}
	defD := func(v *time.Duration, full, quick time.Duration) {
		if *v == 0 {
			*v = full
			if st.Quick {
				*v = quick
			}
		}
	}
	def(&st.IdleConns, 10000, 50)
	def(&st.EchoConns, 100, 50)
	def(&st.FanoutSubs, 10000, 50)
	def(&st.StormConns, 64, 8)
	defD(&st.Duration, 10*time.Second, time.Second)
	defD(&st.Warmup, time.Second, 300*time.Millisecond)
	defD(&st.Hold, 2*time.Second, 500*time.Millisecond)
	if st.FanoutRate == 0 {
		st.FanoutRate = 10
		if st.Quick {
			st.FanoutRate = 50
		}
	}
	st.EchoSizes = []int{64, 4096}
	if echoSizes != "" {
		st.EchoSizes = nil
		for _, s := range splitList(echoSizes) {
			if n, err := strconv.Atoi(s); err == nil {
				st.EchoSizes = append(st.EchoSizes, n)
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// findBenchDir returns the directory of the module
// github.com/wsgate/wsgate/bench: flagDir, or the first directory from the
// working directory upwards that is it or holds it as bench/.
func findBenchDir(flagDir string) (string, error) {
	isBench := func(d string) bool {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		return err == nil && bytes.Contains(b, []byte("module github.com/wsgate/wsgate/bench\n"))
	}
	if flagDir != "" {
		if !isBench(flagDir) {
			return "", fmt.Errorf("compare: %s is not the bench module", flagDir)
		}
		return filepath.Abs(flagDir)
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isBench(d) {
			return d, nil
		}
		if isBench(filepath.Join(d, "bench")) {
			return filepath.Join(d, "bench"), nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("compare: cannot find the bench module (github.com/wsgate/wsgate/bench); run from the repository or pass -bench-dir")
		}
		d = up
	}
}

// buildServer builds one server into binDir. It returns the binary, or
// why there is none.
func buildServer(ctx context.Context, benchDir, binDir, name string, stderr io.Writer) (bin, why string) {
	// wsgate is built in the root module, whose go.mod has the gateway's
	// requirements; the peers in the bench module.
	pkg, dir := "./cmd/wsgate", filepath.Join(benchDir, "..")
	if name != "wsgate" {
		d := filepath.Join(benchDir, "peers", name)
		if m, _ := filepath.Glob(filepath.Join(d, "*.go")); len(m) == 0 {
			return "", "no Go package in " + d
		}
		pkg, dir = "./peers/"+name, benchDir
	}
	bin = filepath.Join(binDir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	fmt.Fprintf(stderr, "wsbench compare: go build -o %s %s\n", bin, pkg)
	if err := cmd.Run(); err != nil {
		return "", fmt.Sprintf("go build %s: %v: %s", pkg, err, strings.TrimSpace(lastLines(buf.String(), 5)))
	}
	return bin, ""
}

// runCase starts a fresh server, runs one case against it and stops it.
// skip is set when the server cannot do the case (no deflate).
func runCase(ctx context.Context, bin, name string, c benchCase, st *compareSettings, cpuPath, heapPath string, progress, stderr io.Writer) (res *load.Result, skip string, err error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := []string{"-addr", addr, "-admin", admin, "-loops", strconv.Itoa(st.ServerLoops)}
	if name == "wsgate" {
		args = append([]string{"echo"}, args...) // cmd/wsgate runs the gateway by default
	}
	if c.Scenario == load.ScenarioFanout {
		args = append(args, "-broadcast")
	}
	if c.Deflate {
		args = append(args, "-deflate")
	}
	if c.Takeover {
		args = append(args, "-deflate-takeover")
	}
	srv, err := startServer(ctx, bin, args)
	if err != nil {
		return nil, "", err
	}
	defer srv.stop()
	statsURL := "http://" + admin + "/stats"
	if err := srv.waitReady(ctx, addr, statsURL); err != nil {
		log := srv.output()
		if c.Deflate && deflateUnsupported(log) {
			return nil, "deflate unsupported: " + strings.TrimSpace(lastLines(log, 1)), nil
		}
		return nil, "", fmt.Errorf("%w; server output: %s", err, strings.TrimSpace(lastLines(log, 5)))
	}
	cfg := load.Config{
		Scenario:    c.Scenario,
		URL:         "ws://" + addr + "/",
		Deflate:     c.Deflate,
		Takeover:    c.Takeover,
		Size:        c.Size,
		InFlight:    st.InFlight,
		PubRate:     st.FanoutRate,
		Duration:    st.Duration,
		Warmup:      st.Warmup,
		Hold:        st.Hold,
		DialRate:    st.DialRate,
		Stats:       load.StatsSource{URL: statsURL},
		CPUProfile:  cpuPath,
		HeapProfile: heapPath,
		Progress:    progress,
		Stderr:      stderr,
		Label:       name + " " + c.label(),
	}
	switch c.Scenario {
	case load.ScenarioIdle:
		cfg.Conns = st.IdleConns
	case load.ScenarioEcho:
		cfg.Conns = st.EchoConns
	case load.ScenarioFanout:
		cfg.Conns, cfg.Stalled = st.FanoutSubs-c.Stalled, c.Stalled
	case load.ScenarioStorm:
		cfg.Conns = st.StormConns
	}
	res, err = load.Run(ctx, cfg)
	if err != nil && c.Deflate && deflateUnsupported(srv.output()) {
		return nil, "deflate unsupported: " + strings.TrimSpace(lastLines(srv.output(), 1)), nil
	}
	if err == nil && srv.exited() {
		err = fmt.Errorf("server exited during the run: %s", strings.TrimSpace(lastLines(srv.output(), 5)))
	}
	return res, "", err
}

// gatewayBinary returns the binary of a gateway server, or why there is
// none: Centrifugo from $CENTRIFUGO or GOPATH/bin (.ci/centrifugo.sh),
// wsgate's gateway from the cmd/wsgate build.
func gatewayBinary(ctx context.Context, benchDir, binDir, name string, bins map[string]string, stderr io.Writer) (bin, why string) {
	switch name {
	case gwCentrifugo:
		bin, err := gateway.LookBinary(gateway.Centrifugo, binDir)
		if err != nil {
			return "", err.Error()
		}
		return bin, ""
	case gwWsgate:
		if b := bins["wsgate"]; b != "" {
			return b, ""
		}
		return buildServer(ctx, benchDir, binDir, "wsgate", stderr)
	}
	return "", "unknown gateway server (centrifugo, wsgate-gateway)"
}

// runGatewayCase starts a fresh gateway server (Centrifugo or wsgate's
// gateway, one configuration: bench/gateway.DefaultConfig), runs the
// gateway scenario against it and stops it. Server figures come from
// /proc.
func runGatewayCase(ctx context.Context, bin, name string, c benchCase, st *compareSettings, progress, stderr io.Writer) (*load.Result, error) {
	kind := gateway.Centrifugo
	if name == gwWsgate {
		kind = gateway.Wsgate
	}
	dir, err := os.MkdirTemp("", "wsbench-gateway-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tg, err := gateway.Start(kind, bin, gateway.DefaultConfig(100), dir)
	if err != nil {
		return nil, err
	}
	defer tg.Close()
	res, err := load.Run(ctx, load.Config{
		Scenario: load.ScenarioGateway,
		URL:      tg.WS,
		Gateway: &load.GatewayTarget{
			API: tg.API, APIKey: tg.Config.APIKey, Secret: tg.Config.Secret, Channel: gatewayChannel,
		},
		Conns:    st.FanoutSubs,
		Size:     c.Size,
		PubRate:  st.FanoutRate,
		Duration: st.Duration,
		Warmup:   st.Warmup,
		DialRate: st.DialRate,
		Stats:    load.StatsSource{PID: tg.PID()},
		Progress: progress,
		Stderr:   stderr,
		Label:    name + " " + c.label(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w; server output: %s", err, strings.TrimSpace(lastLines(tg.Output(), 5)))
	}
	return res, nil
}

// deflateUnsupported reports whether a server's output says it cannot do
// -deflate: the contract's message, or a flag package that does not know
// the flag.
func deflateUnsupported(log string) bool {
	return strings.Contains(log, "deflate unsupported") ||
		strings.Contains(log, "flag provided but not defined: -deflate")
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// serverProc is a running server with its output kept in memory.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  []byte
}

func startServer(ctx context.Context, bin string, args []string) (*serverProc, error) {
	s := &serverProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

// Write keeps the last 64 KiB of the server's output.
func (s *serverProc) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = append(s.out, p...)
	if len(s.out) > 64<<10 {
		s.out = append(s.out[:0], s.out[len(s.out)-32<<10:]...)
	}
	return len(p), nil
}

func (s *serverProc) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.out)
}

func (s *serverProc) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitReady waits until the server answers /stats and accepts TCP
// connections, or exits.
func (s *serverProc) waitReady(ctx context.Context, addr, statsURL string) error {
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("server exited at startup (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get(statsURL)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		c.Close()
		return nil
	}
	return errors.New("server not ready within 15s")
}

// stop sends SIGTERM and, after 5 s, SIGKILL.
func (s *serverProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// machine describes this machine: nproc, free -h, uname -r, go version.
func machine() map[string]string {
	m := map[string]string{
		"nproc":      strconv.Itoa(runtime.NumCPU()),
		"goos":       runtime.GOOS + "/" + runtime.GOARCH,
		"wsbench_go": runtime.Version(),
	}
	run := func(key string, name string, args ...string) {
		out, err := exec.Command(name, args...).Output()
		if err == nil {
			m[key] = strings.TrimSpace(string(out))
		}
	}
	run("nproc", "nproc")
	run("free -h", "free", "-h")
	run("uname -r", "uname", "-r")
	run("go version", "go", "version")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg at start"] = strings.TrimSpace(string(b))
	}
	return m
}

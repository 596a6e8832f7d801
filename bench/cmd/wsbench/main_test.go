package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

func TestMain(m *testing.M) {
	if load.IsWorker() { // Run re-executes this test binary as its workers
		load.WorkerMain()
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binDir   string
	buildErr error
	build    sync.Once
)

// wsgateBinary builds cmd/wsgate from the library once.
func wsgateBinary(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "wsbench-test-")
		if buildErr != nil {
			return
		}
		// Built in the root module, whose go.mod has the gateway's requirements.
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "wsgate"), "./cmd/wsgate")
		cmd.Dir = "../../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build cmd/wsgate: %v", buildErr)
	}
	return filepath.Join(binDir, "wsgate")
}

// startWsgate runs cmd/wsgate on free ports and returns its ws:// URL and
// stats URL.
func startWsgate(t *testing.T, args ...string) (wsURL, statsURL string) {
	t.Helper()
	bin := wsgateBinary(t)
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), bin, append([]string{"echo", "-addr", addr, "-admin", admin}, args...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	statsURL = "http://" + admin + "/stats"
	if err := srv.waitReady(context.Background(), addr, statsURL); err != nil {
		t.Fatalf("%v: %s", err, srv.output())
	}
	return "ws://" + addr + "/", statsURL
}

// TestScenarios runs every scenario at a tiny size against cmd/wsgate and
// wants correct traffic and not a single error.
func TestScenarios(t *testing.T) {
	wsURL, statsURL := startWsgate(t, "-broadcast", "-deflate", "-loops", "2")
	base := load.Config{
		URL:      wsURL,
		Stats:    load.StatsSource{URL: statsURL},
		Duration: 700 * time.Millisecond,
		Warmup:   200 * time.Millisecond,
		Hold:     200 * time.Millisecond,
		Loops:    1,
		Timeout:  40 * time.Second,
	}
	tests := []struct {
		name  string
		edit  func(c *load.Config)
		check func(t *testing.T, r *load.Result)
	}{
		{"idle", func(c *load.Config) { c.Scenario, c.Conns, c.Workers = load.ScenarioIdle, 30, 2 }, func(t *testing.T, r *load.Result) {
			if r.Counters.Open != 30 || r.Server.After.Conns < 30 {
				t.Errorf("open %d, server conns %d; want 30", r.Counters.Open, r.Server.After.Conns)
			}
			if r.HandshakesPerSec <= 0 || r.Server.RSSPerConn == 0 {
				t.Errorf("handshakes/s %g, RSS/conn %g", r.HandshakesPerSec, r.Server.RSSPerConn)
			}
		}},
		{"echo", func(c *load.Config) { c.Scenario, c.Conns, c.Size, c.InFlight = load.ScenarioEcho, 10, 100, 2 }, func(t *testing.T, r *load.Result) {
			wantMessages(t, r)
			if r.Counters.WinWire != r.Counters.WinBytes {
				t.Errorf("%d wire bytes for %d message bytes, without compression", r.Counters.WinWire, r.Counters.WinBytes)
			}
		}},
		{"echo text deflate", func(c *load.Config) {
			c.Scenario, c.Conns, c.Size, c.Text, c.Deflate = load.ScenarioEcho, 4, 2000, true, true
		}, func(t *testing.T, r *load.Result) {
			wantMessages(t, r)
			if r.Counters.Compressed == 0 {
				t.Error("no message arrived compressed")
			}
			// The filler is JSON-like text: DEFLATE shrinks it to well
			// under half.
			if r.Counters.WinWire <= 0 || 2*r.Counters.WinWire > r.Counters.WinBytes {
				t.Errorf("%d wire bytes for %d message bytes; want 0 < wire < half", r.Counters.WinWire, r.Counters.WinBytes)
			}
		}},
		{"fanout", func(c *load.Config) {
			c.Scenario, c.Conns, c.PubRate, c.Workers = load.ScenarioFanout, 20, 40, 2
		}, wantMessages},
		{"fanout with stalled subscribers", func(c *load.Config) {
			c.Scenario, c.Conns, c.Stalled, c.PubRate, c.Size, c.Workers = load.ScenarioFanout, 10, 5, 100, 4096, 2
		}, func(t *testing.T, r *load.Result) {
			wantMessages(t, r)
			if r.Counters.Stalled != 5 {
				t.Errorf("%d stalled subscribers open; want 5", r.Counters.Stalled)
			}
		}},
		{"storm", func(c *load.Config) { c.Scenario, c.Conns = load.ScenarioStorm, 4 }, func(t *testing.T, r *load.Result) {
			if r.Counters.WinHandshakes == 0 || r.HandshakesPerSec <= 0 {
				t.Errorf("no handshakes in the window: %+v", r.Counters)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			start := time.Now()
			r, err := load.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s in %v: %+v", tt.name, time.Since(start).Round(time.Millisecond), r.Counters)
			if r.Errors != 0 || r.Counters.HSFailed != 0 {
				t.Errorf("%d errors, %d failed connections: %v", r.Errors, r.Counters.HSFailed, r.Samples)
			}
			if r.Server == nil {
				t.Fatal("no server figures despite -stats")
			}
			tt.check(t, r)
		})
	}
}

func wantMessages(t *testing.T, r *load.Result) {
	t.Helper()
	if r.Counters.WinRecv == 0 || r.MsgsPerSec <= 0 || r.LatP99 <= 0 || r.LatP50 > r.LatP99 {
		t.Errorf("no traffic measured: %+v, p50 %g p99 %g", r.Counters, r.LatP50, r.LatP99)
	}
	if r.Server.CPUSeconds < 0 {
		t.Errorf("server CPU %g", r.Server.CPUSeconds)
	}
}

// TestCLI runs the command line as a user would, with -json.
func TestCLI(t *testing.T) {
	wsURL, statsURL := startWsgate(t, "-loops", "1")
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	err := runMain(context.Background(), []string{
		"-url", wsURL, "-scenario", "echo", "-conns", "5", "-duration", "400ms", "-warmup", "100ms",
		"-stats", statsURL, "-json", out, "-header", "X-Test: 1", "-loops", "1",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"round trips", "latency", "errors     0", "server     CPU"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	var r load.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Counters.WinRecv == 0 {
		t.Fatalf("json result: %v, %+v", err, r.Counters)
	}
	// A server that is not there is an error, not a hang.
	err = runMain(context.Background(), []string{"-url", "ws://127.0.0.1:1/", "-scenario", "idle", "-conns", "2", "-quiet"}, io.Discard, io.Discard)
	if err == nil {
		t.Error("no error for a closed port")
	}
}

// TestCompareQuick runs compare with wsgate (and a peer that does not
// exist, which must be skipped) and checks every output file. 200 idle
// connections: with 20, the memory they add was once within the noise of
// a collection (no bar in memory-per-conn.svg, in a CI run).
func TestCompareQuick(t *testing.T) {
	wsgateBinary(t) // warm the build cache
	dir := t.TempDir()
	var stdout bytes.Buffer
	err := compareMain(context.Background(), []string{
		"-quick", "-out", dir, "-servers", "wsgate,no-such-peer", "-scenarios", "idle,echo",
		"-echo-sizes", "64", "-idle-conns", "200", "-echo-conns", "5", "-duration", "400ms", "-warmup", "100ms",
		"-hold", "100ms", "-heapprofile", "-quiet",
	}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if _, ok := rep.Missing["no-such-peer"]; !ok || len(rep.Servers) != 1 {
		t.Errorf("servers %v, missing %v", rep.Servers, rep.Missing)
	}
	if len(rep.Records) != 4 { // idle and echo 64 B, off and on
		t.Fatalf("%d records, want 4", len(rep.Records))
	}
	for _, r := range rep.Records {
		if r.Error != "" || r.Skipped != "" || r.Result == nil || r.Result.Errors != 0 {
			t.Errorf("%s %s: error %q skipped %q", r.Server, r.Case.label(), r.Error, r.Skipped)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	if !strings.Contains(string(md), "| wsgate |") || !strings.Contains(stdout.String(), "## Echo 64 B") {
		t.Errorf("markdown lacks the tables:\n%s", md)
	}
	for _, name := range chartNames {
		checkSVG(t, filepath.Join(dir, name))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "profiles", "wsgate_*.heap.pprof")); len(m) != 4 {
		t.Errorf("heap profiles: %v", m)
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 3 { // background, legend, at least one bar
		t.Errorf("%s: %d rects", path, rects)
	}
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// centrifuge-js in Node: testdata/sdk_node.mjs runs the scenarios with the
// SDK's JSON or Protobuf build and prints what it saw; the checks are
// here.

// jsSub is a subscribed event as the scripts report it.
type jsSub struct {
	Recoverable   bool   `json:"recoverable"`
	WasRecovering bool   `json:"wasRecovering"`
	Recovered     bool   `json:"recovered"`
	Epoch         string `json:"epoch"`
	Offset        uint64 `json:"offset"`
}

type jsRefused struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// jsScenarios is what sdk_node.mjs (and sdk_page.html) report per
// scenario; each carries error when it threw, and ms.
type jsScenarios struct {
	Connect *struct {
		Client string `json:"client"`
		State  string `json:"state"`
	} `json:"connect"`
	BadSignature *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		Connects int    `json:"connects"`
		Dials    int    `json:"dials"`
		State    string `json:"state"`
	} `json:"badSignature"`
	Order *struct {
		APIOffsets []uint64   `json:"apiOffsets"`
		Received   []received `json:"received"`
	} `json:"order"`
	Recover *struct {
		First        jsSub      `json:"first"`
		OutageCode   int        `json:"outageCode"`
		Resubscribed jsSub      `json:"resubscribed"`
		APIEpoch     string     `json:"apiEpoch"`
		APIOffsets   []uint64   `json:"apiOffsets"`
		Received     []received `json:"received"`
		Dials        int        `json:"dials"`
	} `json:"recover"`
	ServerSide *struct {
		Channels   []string      `json:"channels"`
		Subscribed []string      `json:"subscribed"`
		APIOffsets [2][]uint64   `json:"apiOffsets"`
		Received   [2][]received `json:"received"`
	} `json:"serverSide"`
	Refresh *struct {
		Expired struct {
			GetTokenCalls int `json:"getTokenCalls"`
			Dials         int `json:"dials"`
		} `json:"expired"`
		Short struct {
			GetTokenCalls int    `json:"getTokenCalls"`
			Dials         int    `json:"dials"`
			Disconnects   int    `json:"disconnects"`
			Connectings   int    `json:"connectings"`
			State         string `json:"state"`
		} `json:"short"`
		APIOffsets []uint64   `json:"apiOffsets"`
		Received   []received `json:"received"`
	} `json:"refresh"`
	ClientPublish *struct {
		Received        []received  `json:"received"`
		Refused         []jsRefused `json:"refused"`
		RefusedReceived int         `json:"refusedReceived"`
		State           string      `json:"state"`
	} `json:"clientPublish"`
}

// jsCommon are the fields every scenario report has.
type jsCommon struct {
	Error string  `json:"error"`
	Ms    float64 `json:"ms"`
}

// nodePath returns node, skipping the test when it is missing (failing in
// CI). When testdata/node_modules lacks the SDK, it runs npm ci there
// (from package-lock.json).
func nodePath(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if inCI() {
			t.Fatal("node is not installed (CI=true: run .ci/deps.sh)")
		}
		t.Skip("node is not installed")
	}
	npmMu.Lock()
	defer npmMu.Unlock()
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "centrifuge", "package.json")); err == nil {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("testdata/node_modules/centrifuge is missing and npm is not installed: (cd bench/gateway/testdata && npm ci)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in testdata: %v\n%s", err, out)
	}
	return node
}

// npmMu keeps two tests from running npm ci at once.
var npmMu sync.Mutex

// scriptConfig is the configuration the JavaScript side gets.
func scriptConfig(tg *Target, format string) map[string]string {
	return map[string]string{
		"ws": tg.WS, "api": tg.API, "apiKey": tg.Config.APIKey, "secret": tg.Config.Secret,
		"format": format, "prefix": fmt.Sprintf("%d", time.Now().UnixNano()),
	}
}

func TestNodeSDK(t *testing.T) {
	node := nodePath(t)
	forEachTarget(t, func(t *testing.T, tg *Target) {
		for _, format := range formats {
			t.Run(format, func(t *testing.T) {
				t.Parallel()
				conf, _ := json.Marshal(scriptConfig(tg, format))
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, "sdk_node.mjs")
				cmd.Dir = "testdata"
				cmd.Env = append(os.Environ(), "SDK_TEST_CONFIG="+string(conf))
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				start := time.Now()
				err := cmd.Run()
				line := bytes.TrimSpace(stdout.Bytes())
				if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
					line = line[i+1:]
				}
				if err != nil || len(line) == 0 {
					t.Fatalf("node: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
				}
				t.Logf("node ran in %v", time.Since(start).Round(time.Millisecond))
				checkJSScenarios(t, line, true)
			})
		}
	})
}

// checkJSScenarios checks a report of sdk_node.mjs (full) or of
// sdk_page.html (connect, order and recover only).
func checkJSScenarios(t *testing.T, report []byte, full bool) {
	var raw struct {
		Scenarios map[string]json.RawMessage `json:"scenarios"`
	}
	var sc jsScenarios
	var wrap struct {
		Scenarios *jsScenarios `json:"scenarios"`
	}
	wrap.Scenarios = &sc
	if err := json.Unmarshal(report, &raw); err != nil {
		t.Fatalf("report: %v\n%s", err, report)
	}
	if err := json.Unmarshal(report, &wrap); err != nil {
		t.Fatalf("report: %v\n%s", err, report)
	}
	want := []string{"connect", "order", "recover"}
	if full {
		want = append(want, "badSignature", "serverSide", "refresh", "clientPublish")
	}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			var c jsCommon
			if err := json.Unmarshal(raw.Scenarios[name], &c); err != nil || raw.Scenarios[name] == nil {
				t.Fatalf("no report for %s: %v", name, err)
			}
			t.Logf("%s: %.0f ms", name, c.Ms)
			if c.Error != "" {
				t.Fatalf("script: %s", c.Error)
			}
			checkJSScenario(t, name, &sc)
		})
	}
}

func checkJSScenario(t *testing.T, name string, sc *jsScenarios) {
	switch name {
	case "connect":
		if sc.Connect.Client == "" || sc.Connect.State != "connected" {
			t.Errorf("client %q, state %q; want a client id, connected", sc.Connect.Client, sc.Connect.State)
		}
	case "badSignature":
		b := sc.BadSignature
		if b.Code != 3500 || b.Connects != 0 || b.Dials != 1 || b.State != "disconnected" {
			t.Errorf("bad signature: disconnect %d %q, %d connects, %d dials, state %q; want 3500, 0, 1, disconnected",
				b.Code, b.Reason, b.Connects, b.Dials, b.State)
		}
	case "order":
		o := sc.Order
		if len(o.APIOffsets) != 50 || o.APIOffsets[0] != 1 || !slices.Equal(o.APIOffsets, offsetRange(1, 50)) {
			t.Errorf("API offsets %v; want 1..50", o.APIOffsets)
		}
		checkSequence(t, "received", o.Received, 0, o.APIOffsets)
	case "recover":
		r := sc.Recover
		if !r.First.Recoverable {
			t.Errorf("first subscribe: %+v; want recoverable", r.First)
		}
		if !r.Resubscribed.WasRecovering || !r.Resubscribed.Recovered || r.Resubscribed.Epoch != r.APIEpoch {
			t.Errorf("resubscribe: %+v; want wasRecovering, recovered, epoch %q", r.Resubscribed, r.APIEpoch)
		}
		if !slices.Equal(r.APIOffsets, offsetRange(1, 26)) {
			t.Errorf("API offsets %v; want 1..26", r.APIOffsets)
		}
		checkSequence(t, "received (5 live, 20 recovered, 1 live)", r.Received, 0, r.APIOffsets)
		t.Logf("outage code %d; %d dials", r.OutageCode, r.Dials)
	case "serverSide":
		s := sc.ServerSide
		got := slices.Sorted(slices.Values(s.Subscribed))
		if !slices.Equal(got, slices.Sorted(slices.Values(s.Channels))) {
			t.Errorf("server-side subscriptions %v; want %v", s.Subscribed, s.Channels)
		}
		checkSequence(t, "first channel", s.Received[0], 0, s.APIOffsets[0])
		checkSequence(t, "second channel", s.Received[1], 100, s.APIOffsets[1])
		if len(s.APIOffsets[0]) != 10 || len(s.APIOffsets[1]) != 5 {
			t.Errorf("API offsets %v; want 10 and 5", s.APIOffsets)
		}
	case "refresh":
		r := sc.Refresh
		if r.Expired.GetTokenCalls != 1 || r.Expired.Dials != 2 {
			t.Errorf("expired token: %d getToken calls, %d dials; want 1 and 2", r.Expired.GetTokenCalls, r.Expired.Dials)
		}
		s := r.Short
		if s.GetTokenCalls < 1 || s.Dials != 1 || s.Disconnects != 0 || s.Connectings != 0 || s.State != "connected" {
			t.Errorf("token expiring in 2 s, after 3.5 s: %+v; want ≥1 getToken, 1 dial, no disconnect or reconnect, connected", s)
		}
		checkSequence(t, "after refresh", r.Received, 0, r.APIOffsets)
		if len(r.APIOffsets) != 3 {
			t.Errorf("API offsets %v; want 3", r.APIOffsets)
		}
	case "clientPublish":
		p := sc.ClientPublish
		checkSequence(t, "own publications", p.Received, 0, offsetRange(1, 3))
		if len(p.Refused) != 2 {
			t.Fatalf("refused publishes: %v; want 2", p.Refused)
		}
		for _, r := range p.Refused {
			if r.Code != 103 {
				t.Errorf("publish without permission: %d %q; want 103", r.Code, r.Message)
			}
		}
		if p.RefusedReceived != 0 || p.State != "connected" {
			t.Errorf("after refused publishes: %d received, state %q; want 0, connected", p.RefusedReceived, p.State)
		}
	}
}

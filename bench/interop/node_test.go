package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wsgate/wsgate/loop"
)

// nodeSummary is the JSON line testdata/node_client.mjs prints.
type nodeSummary struct {
	OK          bool     `json:"ok"`
	WS          string   `json:"ws"`
	Extensions  string   `json:"extensions"`
	RoundTrips  int      `json:"roundTrips"`
	Bytes       int      `json:"bytes"`
	Pongs       int      `json:"pongs"`
	CloseCode   int      `json:"closeCode"`
	CloseReason string   `json:"closeReason"`
	Errors      []string `json:"errors"`
}

// ensureNodeWS returns the node binary, skipping the test only when node
// is not installed. The ws package must be in testdata/node_modules
// (.ci/deps.sh puts it there); if it is missing and npm is at hand, it is
// installed from testdata/package-lock.json.
func ensureNodeWS(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed (CI=true: run .ci/deps.sh, which installs it)")
		}
		t.Skip("node is not installed (.ci/deps.sh installs it)")
	}
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "ws", "package.json")); err == nil {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("testdata/node_modules/ws is missing and npm is not installed: run .ci/deps.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in testdata: %v\n%s\n(run .ci/deps.sh)", err, out)
	}
	return node
}

// runNodeClient runs testdata/node_client.mjs with args and returns the
// JSON summary it prints last; the errors it reports fail t.
func runNodeClient(t *testing.T, node string, args ...string) nodeSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join("testdata", "node_client.mjs")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var sum nodeSummary
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &sum); err != nil {
		t.Fatalf("node client: %v; no JSON summary (%v)\nstdout:\n%s\nstderr:\n%s", runErr, err, stdout.Bytes(), stderr.Bytes())
	}
	for _, e := range sum.Errors {
		t.Errorf("node client: %s", e)
	}
	if runErr != nil || !sum.OK {
		t.Errorf("node client: exit %v, ok=%v\nstderr:\n%s", runErr, sum.OK, stderr.Bytes())
	}
	return sum
}

func TestNodeWS(t *testing.T) {
	t.Parallel()
	node := ensureNodeWS(t)
	ts := startServer(t, nil, loop.Options{})

	sum := runNodeClient(t, node, ts.url)
	t.Logf("node client (ws %s): %d round trips, %d bytes, %d pongs, close %d %q",
		sum.WS, sum.RoundTrips, sum.Bytes, sum.Pongs, sum.CloseCode, sum.CloseReason)
	// 9 sizes × text and binary; 3 pings; close answered with 1000.
	if sum.RoundTrips != 18 || sum.Pongs != 3 || sum.CloseCode != 1000 {
		t.Errorf("node client: %d round trips, %d pongs, close %d; want 18, 3, 1000",
			sum.RoundTrips, sum.Pongs, sum.CloseCode)
	}

	if sum.Extensions != "" {
		t.Errorf("node ws.extensions = %q with perMessageDeflate off; want \"\"", sum.Extensions)
	}
	if o := ts.h.opens.Load(); o != 1 {
		t.Errorf("server: %d OnOpen; want 1", o)
	}
	expectClose(t, ts.h.nextClose(t), 1000, "node done", true)
}

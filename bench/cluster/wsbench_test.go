package cluster

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestWsbenchCluster runs wsbench's cluster scenario against a real
// nats-server and three wsgate processes: clients spread over the three
// nodes, publications through one node's API. By default a smoke run
// (3 × 10 clients, 20/s for 2 s) that checks every publication reached
// every client once, in order; WSBENCH_CLUSTER="-conns 9000 -rate 100
// -duration 10s" (extra wsbench flags) runs it at size and prints the
// figures.
func TestWsbenchCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	natsBin := build(t, dir, "nats-server", "github.com/nats-io/nats-server/v2")
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	benchBin := build(t, dir, "wsbench", "github.com/wsgate/wsgate/bench/cmd/wsbench")
	cfgFile := writeConfig(t, dir)
	natsPort, monPort := freePort(t), freePort(t)
	start(t, filepath.Join(dir, "nats.log"), natsBin, "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort),
		"-m", strconv.Itoa(monPort), "-js", "-sd", filepath.Join(dir, "js"))
	nodes := startNodes(t, dir, gateBin, cfgFile, "nats://127.0.0.1:"+strconv.Itoa(natsPort))
	var urls, pids []string
	for _, n := range nodes {
		urls = append(urls, "ws://"+n.ws+"/connection/websocket")
		pids = append(pids, strconv.Itoa(n.cmd.Process.Pid))
	}
	args := []string{"-scenario", "cluster", "-url", strings.Join(urls, ","), "-api", "http://" + nodes[0].api + "/api",
		"-api-key", apiKey, "-secret", secret, "-channel", "wsbench-cluster", "-quiet",
		"-nats-monitor", "http://127.0.0.1:" + strconv.Itoa(monPort), "-pids", strings.Join(pids, ",")}
	if extra := os.Getenv("WSBENCH_CLUSTER"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	} else {
		args = append(args, "-conns", "30", "-rate", "20", "-duration", "2s", "-warmup", "200ms")
	}
	var out bytes.Buffer
	cmd := exec.Command(benchBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("wsbench %s\n%s", strings.Join(args, " "), out.String())
	// A publish tick skipped because every request slot was busy is the
	// machine's load (wsbench counts it as an error and exits 1), not a
	// delivery error.
	if err != nil && (!regexp.MustCompile(`errors +\d+ \(payload 0, order 0, lost 0, protocol 0, dropped 0\)`).MatchString(out.String()) ||
		regexp.MustCompile(`publish: |dial|refused`).MatchString(out.String())) {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(\d+) publications, (\d+) deliveries \(want (\d+)\).* lost (\d+), duplicates or out of order (\d+)`).
		FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("no cluster figures in wsbench's output")
	}
	if m[2] != m[3] || m[4] != "0" || m[5] != "0" || m[1] == "0" {
		t.Fatalf("publications %s, deliveries %s (want %s), lost %s, duplicates %s", m[1], m[2], m[3], m[4], m[5])
	}
	per := regexp.MustCompile(`(\d+) clients subscribed \(spread evenly: (\d+) per node\)`).FindStringSubmatch(out.String())
	if per == nil || per[1] == "0" {
		t.Fatalf("clients not spread over the nodes: %v", per)
	}
}

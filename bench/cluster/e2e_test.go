// Package cluster tests wsgate's NATS broker: against an embedded NATS
// server with JetStream (natsbroker_test.go), and end to end with a real
// nats-server process, three cmd/wsgate processes on loopback and
// centrifuge-go clients spread across them. It is a module of its own so
// that nats-server (which needs newer klauspost/compress and x/sys than
// the gateway pins) stays out of the gateway's and the benchmarks'
// modules.
package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
)

const (
	secret  = "e2e-secret"
	apiKey  = "e2e-key"
	channel = "e2e"
	config  = `{
  "client": {"token": {"hmac_secret_key": "` + secret + `"}, "allowed_origins": ["*"]},
  "channel": {"without_namespace": {"history_size": 2000, "history_ttl": "300s", "force_recovery": true,
    "allow_subscribe_for_client": true},
    "namespaces": [{"name": "small", "history_size": 5, "history_ttl": "300s", "force_recovery": true,
      "allow_subscribe_for_client": true}]},
  "http_api": {"key": "` + apiKey + `"}
}`
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// build builds pkg into dir/out. The gateway is built in its own module
// (../..) and the load tools in theirs (..), with the dependency versions it ships with, not this module's
// (nats-server raises some of them here).
func build(t *testing.T, dir, out, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, out)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	switch {
	case strings.HasPrefix(pkg, "github.com/wsgate/wsgate/bench/"):
		cmd.Dir = ".." // the benchmark module
	case strings.HasPrefix(pkg, "github.com/wsgate/wsgate/"):
		cmd.Dir = "../.."
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return bin
}

func start(t *testing.T, logf string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
	})
	return cmd
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type node struct {
	name    string
	ws, api string
	cmd     *exec.Cmd
}

func api(n *node, method string, body any) (map[string]json.RawMessage, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+n.api+"/api/"+method, bytes.NewReader(b))
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var r map[string]json.RawMessage
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("%s: %s", resp.Status, out)
	}
	if e, ok := r["error"]; ok {
		return nil, fmt.Errorf("api error %s", e)
	}
	return r, nil
}

func ready(n *node) bool {
	resp, err := http.Get("http://" + n.api + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// client is one centrifuge-go client and what it saw.
type client struct {
	c      *centrifuge.Client
	user   string
	mu     sync.Mutex
	id     string // client id of the last connect
	offs   []uint64
	dups   int
	gaps   int
	subs   int // subscribed events
	recov  int // subscribed events with recovered: true after recovering
	failed int // subscribed events that tried to recover and could not
	// from is the position the last failed recovery gave; restart: the
	// next publication is checked against it
	from    uint64
	restart bool
	discon  chan uint32
	unsub   chan uint32
}

func (c *client) seen() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.offs), c.id
}

type info struct {
	Nodes []struct {
		UID        string `json:"uid"`
		Name       string `json:"name"`
		NumClients int64  `json:"num_clients"`
	} `json:"nodes"`
}

// TestClusterEndToEnd: publications through each node's API reach every
// client in offset order; a node killed with SIGKILL loses no
// publication for its clients (they reconnect to the other nodes and
// recover); NATS restarted, the nodes resume; /api/info lists the three
// nodes; /api/unsubscribe and /api/disconnect reach a client on another
// node.
func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	natsBin := build(t, dir, "nats-server", "github.com/nats-io/nats-server/v2")
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	natsPort := freePort(t)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	store := filepath.Join(dir, "js")
	natsArgs := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-js", "-sd", store}
	natsCmd := start(t, filepath.Join(dir, "nats.log"), natsBin, natsArgs...)

	nodes := startNodes(t, dir, gateBin, cfgFile, natsURL)
	var inf info
	waitUntil(t, "/api/info lists 3 nodes", 10*time.Second, func() bool {
		r, err := api(nodes[1], "info", struct{}{})
		return err == nil && json.Unmarshal(r["result"], &inf) == nil && len(inf.Nodes) == 3
	})
	uidNode := map[string]int{}
	for _, ni := range inf.Nodes {
		for i, n := range nodes {
			if ni.Name == n.name {
				uidNode[ni.UID] = i
			}
		}
	}
	if len(uidNode) != 3 {
		t.Fatalf("/api/info names: %+v", inf)
	}

	// Clients: each given the three endpoints (centrifuge-go picks them
	// round-robin from a shuffled list), half JSON, half Protobuf.
	const nClients = 30
	var endpoints []string
	for _, n := range nodes {
		endpoints = append(endpoints, "ws://"+n.ws+"/connection/websocket")
	}
	ep := strings.Join(endpoints, ",")
	clients := make([]*client, nClients)
	for i := range clients {
		clients[i] = newClient(t, ep, fmt.Sprintf("user%d", i), channel, i%2 == 1)
	}
	waitUntil(t, "all clients subscribed", 10*time.Second, func() bool { return allSubscribed(clients) })
	perNode := make([]int, 3)
	for _, cl := range clients {
		_, id := cl.seen()
		perNode[uidNode[strings.SplitN(id, "-", 2)[0]]]++
	}
	t.Logf("clients per node: %v", perNode)
	if perNode[0] == 0 {
		t.Fatal("no client on node0, the node to be killed") // 1 chance in (2/3)^30
	}

	var pubMu sync.Mutex
	published := map[uint64]bool{}
	pubErrs := 0
	publish := func(from []*node, per int) {
		var wg sync.WaitGroup
		for _, n := range from {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					r, err := api(n, "publish", map[string]any{"channel": channel, "data": map[string]any{"n": n.name, "i": i}})
					pubMu.Lock()
					if err != nil {
						pubErrs++
					} else {
						var res struct {
							Offset uint64 `json:"offset"`
						}
						_ = json.Unmarshal(r["result"], &res)
						if published[res.Offset] {
							t.Errorf("offset %d given twice", res.Offset)
						}
						published[res.Offset] = true
					}
					pubMu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	allGot := func(what string, clients []*client) {
		t.Helper()
		pubMu.Lock()
		n := len(published)
		pubMu.Unlock()
		waitUntil(t, what, 20*time.Second, func() bool {
			for _, cl := range clients {
				if got, _ := cl.seen(); got < n {
					return false
				}
			}
			return true
		})
	}

	// 1. Publishing through the three nodes at once.
	publish(nodes, 100)
	allGot("phase 1 delivered", clients)

	// 2. node0 killed; publishing goes on through the two others.
	if err := nodes[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	publish(nodes[1:], 150)
	allGot("phase 2 delivered (node0's clients recovered on the others)", clients)

	// 3. NATS restarted (same storage): publishes fail while it is down,
	// then the nodes resume.
	if err := natsCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = natsCmd.Wait()
	waitUntil(t, "nodes not ready while NATS is down", 10*time.Second, func() bool { return !ready(nodes[1]) && !ready(nodes[2]) })
	if _, err := api(nodes[1], "publish", map[string]any{"channel": channel, "data": 1}); err == nil {
		t.Fatal("publish succeeded while NATS is down")
	}
	start(t, filepath.Join(dir, "nats2.log"), natsBin, natsArgs...)
	for _, n := range nodes[1:] {
		waitUntil(t, n.name+" ready after NATS restart", 20*time.Second, func() bool { return ready(n) })
	}
	publish(nodes[1:], 50)
	allGot("phase 3 delivered after NATS restart", clients)

	// Counts.
	pubMu.Lock()
	nPub := len(published)
	for o := uint64(1); o <= uint64(nPub); o++ {
		if !published[o] {
			t.Errorf("offsets not contiguous: %d missing of %d", o, nPub)
			break
		}
	}
	pubMu.Unlock()
	deliveries, dups, gaps, recovered, failed := 0, 0, 0, 0, 0
	for _, cl := range clients {
		cl.mu.Lock()
		deliveries += len(cl.offs)
		dups += cl.dups
		gaps += cl.gaps
		recovered += cl.recov
		failed += cl.failed
		for i, o := range cl.offs {
			if o != uint64(i+1) {
				t.Errorf("%s: delivery %d has offset %d", cl.user, i, o)
				break
			}
		}
		cl.mu.Unlock()
	}
	t.Logf("publications %d (publish errors while NATS was down or node0 dying: %d), deliveries %d (want %d), "+
		"recovered subscriptions %d, failed recoveries %d, duplicates %d, gaps %d",
		nPub, pubErrs, deliveries, nPub*nClients, recovered, failed, dups, gaps)
	if deliveries != nPub*nClients || dups != 0 || gaps != 0 || failed != 0 || recovered < perNode[0] {
		t.Fatalf("deliveries %d want %d, duplicates %d, gaps %d, failed recoveries %d, recovered %d (node0 had %d clients)",
			deliveries, nPub*nClients, dups, gaps, failed, recovered, perNode[0])
	}

	// /api/unsubscribe, then /api/disconnect, on node1 reach a client
	// on node2.
	for _, cl := range clients {
		if _, id := cl.seen(); uidNode[strings.SplitN(id, "-", 2)[0]] != 2 {
			continue
		}
		if _, err := api(nodes[1], "unsubscribe", map[string]any{"user": cl.user, "channel": channel}); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-cl.unsub:
			t.Logf("%s on node2 unsubscribed through node1's API with code %d", cl.user, code)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s on node2 not unsubscribed through node1's API", cl.user)
		}
		for len(cl.discon) > 0 {
			<-cl.discon
		}
		if _, err := api(nodes[1], "disconnect", map[string]any{"user": cl.user}); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-cl.discon:
			t.Logf("%s on node2 disconnected through node1's API with code %d", cl.user, code)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s on node2 not disconnected through node1's API", cl.user)
		}
		return
	}
	t.Fatal("no client on node2")
}

// writeConfig writes the nodes' configuration into dir.
func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "config.json")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// startNodes starts three wsgate processes on NATS at natsURL, logging
// into dir, and waits until each is ready.
func startNodes(t *testing.T, dir, gateBin, cfgFile, natsURL string) []*node {
	t.Helper()
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{name: fmt.Sprintf("node%d", i), ws: fmt.Sprintf("127.0.0.1:%d", freePort(t)), api: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		n.cmd = start(t, filepath.Join(dir, n.name+".log"), gateBin, "-config", cfgFile, "-addr", n.ws, "-api-addr", n.api,
			"-admin", "", "-nats", natsURL, "-name", n.name)
		nodes[i] = n
	}
	for _, n := range nodes {
		waitUntil(t, n.name+" ready", 20*time.Second, func() bool { return ready(n) })
	}
	return nodes
}

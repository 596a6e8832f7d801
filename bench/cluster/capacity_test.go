package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// meminfo returns the /proc/meminfo fields in KiB.
func meminfo(t *testing.T) map[string]int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			out[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	return out
}

// sockMem returns the TCP memory of /proc/net/sockstat in KiB.
func sockMem(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "TCP:" {
			for i := 1; i+1 < len(f); i++ {
				if f[i] == "mem" {
					pages, _ := strconv.ParseInt(f[i+1], 10, 64)
					return pages * int64(os.Getpagesize()) / 1024
				}
			}
		}
	}
	return 0
}

// rss returns a process's VmRSS in KiB.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuTicks returns a process's user+system clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// rawClient connects and subscribes over the JSON protocol with a raw
// socket (no SDK state in this process) and returns the connection.
func rawClient(t *testing.T, addr, token, ch string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /connection/websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 101 ") {
		t.Fatalf("upgrade: %q %v", line, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	p := []byte(`{"id":1,"connect":{"token":"` + token + `"}}` + "\n" + `{"id":2,"subscribe":{"channel":"` + ch + `"}}`)
	// A text frame, masked with the key 0 (RFC 6455 5.3: any 32-bit
	// value), so the payload goes as it is.
	f := []byte{0x81, 0x80 | 126, byte(len(p) >> 8), byte(len(p)), 0, 0, 0, 0}
	if _, err := c.Write(append(f, p...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCapacity measures, at WSGATE_CAPACITY clients spread over three
// nodes linked by NATS, the memory per connected, subscribed client
// (node RSS; kernel slab and TCP memory, which count both ends of the
// loopback connections) and the NATS traffic and CPU per publication.
// It runs only when WSGATE_CAPACITY is set.
func TestCapacity(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WSGATE_CAPACITY"))
	if n <= 0 {
		t.Skip("WSGATE_CAPACITY not set")
	}
	dir := t.TempDir()
	natsBin := build(t, dir, "nats-server", "github.com/nats-io/nats-server/v2")
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	natsPort, monPort := freePort(t), freePort(t)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	natsCmd := start(t, filepath.Join(dir, "nats.log"), natsBin, "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort),
		"-m", strconv.Itoa(monPort), "-js", "-sd", filepath.Join(dir, "js"))
	nodes := startNodes(t, dir, gateBin, cfgFile, natsURL)
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "cap"}).SignedString([]byte(secret))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	subsTotal := func() int {
		r, err := api(nodes[0], "info", struct{}{})
		var inf struct {
			Nodes []struct {
				NumSubs int `json:"num_subs"`
			} `json:"nodes"`
		}
		if err != nil || json.Unmarshal(r["result"], &inf) != nil {
			return -1
		}
		subs := 0
		for _, x := range inf.Nodes {
			subs += x.NumSubs
		}
		return subs
	}
	varz := func() map[string]float64 {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", monPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		out := map[string]float64{}
		for _, k := range []string{"in_msgs", "out_msgs", "in_bytes", "out_bytes"} {
			out[k], _ = v[k].(float64)
		}
		return out
	}
	// NATS cost, with one subscriber per node: publishing through one
	// node (its appends never conflict), then through the three in turn
	// (an append may first conflict with the previous node's).
	for _, nd := range nodes {
		conns = append(conns, rawClient(t, nd.ws, tok, "cost0"))
	}
	waitUntil(t, "cost subscribers", 10*time.Second, func() bool { return subsTotal() == 3 })
	const pubs = 2000
	for _, from := range []int{1, 3} {
		v0, c0 := varz(), cpuTicks(t, natsCmd.Process.Pid)
		t0 := time.Now()
		for i := range pubs {
			if _, err := api(nodes[i%from], "publish", map[string]any{"channel": "cost0", "data": map[string]any{"i": i, "pad": strings.Repeat("x", 64)}}); err != nil {
				t.Fatal(err)
			}
		}
		el := time.Since(t0)
		v1, c1 := varz(), cpuTicks(t, natsCmd.Process.Pid)
		t.Logf("%d publications (~100 B) through %d node(s), 3 nodes subscribed, in %v (%.0f/s, one at a time): NATS per publication: in %.2f msgs %.0f B, out %.2f msgs %.0f B, nats-server CPU %.1f µs",
			pubs, from, el.Round(time.Millisecond), pubs/el.Seconds(), (v1["in_msgs"]-v0["in_msgs"])/pubs, (v1["in_bytes"]-v0["in_bytes"])/pubs,
			(v1["out_msgs"]-v0["out_msgs"])/pubs, (v1["out_bytes"]-v0["out_bytes"])/pubs, float64(c1-c0)*1e4/pubs)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	waitUntil(t, "cost subscribers gone", 10*time.Second, func() bool { return subsTotal() == 0 })

	// Memory: measured at n/2 and at n clients; the difference over n/2
	// is the cost of one more client (runtime and kernel growth that
	// comes once is left out).
	half := n / 2
	type snap struct {
		mem       map[string]int64
		sock, rss int64
	}
	take := func() snap {
		time.Sleep(time.Second)
		s := snap{mem: meminfo(t), sock: sockMem(t)}
		for _, nd := range nodes {
			s.rss += rss(t, nd.cmd.Process.Pid)
		}
		return s
	}
	for i := range half {
		conns = append(conns, rawClient(t, nodes[i%3].ws, tok, "cap"))
	}
	waitUntil(t, "half subscribed", 30*time.Second, func() bool { return subsTotal() == half })
	a := take()
	for i := half; i < 2*half; i++ {
		conns = append(conns, rawClient(t, nodes[i%3].ws, tok, "cap"))
	}
	waitUntil(t, "all subscribed", 30*time.Second, func() bool { return subsTotal() == 2*half })
	b := take()
	per := func(kib int64) string { return fmt.Sprintf("%.2f KiB", float64(kib)/float64(half)) }
	t.Logf("from %d to %d clients over 3 nodes, per client: node RSS %s; kernel (both loopback ends): Slab %s, SUnreclaim %s, TCP mem %s",
		half, 2*half, per(b.rss-a.rss), per(b.mem["Slab"]-a.mem["Slab"]), per(b.mem["SUnreclaim"]-a.mem["SUnreclaim"]), per(b.sock-a.sock))
}

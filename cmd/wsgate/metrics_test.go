package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// wsClient is a minimal client of the protocol's JSON format over a real
// socket.
type wsClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	id int
}

func dialWS(t *testing.T, addr string) *wsClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = io.WriteString(c, "GET /connection/websocket HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return &wsClient{t: t, c: c, br: br}
}

// write sends one masked frame.
func (w *wsClient) write(op byte, p []byte) error {
	h := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		h = append(h, 0x80|byte(len(p)))
	default:
		h = append(h, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	mask := [4]byte{7, 1, 3, 9}
	h = append(h, mask[:]...)
	for i, b := range p {
		h = append(h, b^mask[i%4])
	}
	_, err := w.c.Write(h)
	return err
}

// read returns the next message's payload, or the close code of a close
// frame (then p is nil).
func (w *wsClient) read() (p []byte, code int, err error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, 0, err
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, 0, err
			}
			n = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			return nil, 0, fmt.Errorf("message too long for the test")
		}
		p = make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return nil, 0, err
		}
		switch h[0] & 0x0f {
		case 8:
			if len(p) < 2 {
				return nil, 1005, nil
			}
			return nil, int(binary.BigEndian.Uint16(p)), nil
		case 1:
			return p, 0, nil
		}
	}
}

// call sends a command and waits for its reply (server pings, empty
// replies, are skipped).
func (w *wsClient) call(method string, params any) {
	w.t.Helper()
	w.id++
	b, _ := json.Marshal(map[string]any{"id": w.id, method: params})
	if err := w.write(1, b); err != nil {
		w.t.Fatal(err)
	}
	for {
		p, code, err := w.read()
		if err != nil || p == nil {
			w.t.Fatalf("%s: %v, close %d", method, err, code)
		}
		var r struct {
			ID    int             `json:"id"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(p, &r); err != nil {
			w.t.Fatalf("%s: reply %q: %v", method, p, err)
		}
		if r.ID == w.id {
			if r.Error != nil {
				w.t.Fatalf("%s: %s", method, r.Error)
			}
			return
		}
	}
}

var build struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// buildCmd builds the command once for the tests of this package.
func buildCmd(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "wsgate-metrics-test")
		if build.err == nil {
			build.out, build.err = exec.Command("go", "build", "-o", filepath.Join(build.dir, "wsgate"), ".").CombinedOutput()
		}
	})
	if build.err != nil {
		t.Fatalf("build: %v\n%s", build.err, build.out)
	}
	return filepath.Join(build.dir, "wsgate")
}

// TestMain removes the built command.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// logSink collects a process's stderr lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// run starts bin with args, keeps all its stderr lines, and waits for one
// containing want; the process is killed when the test ends.
func run(t *testing.T, bin, want string, args ...string) *logSink {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &logSink{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !s.has(want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, s.snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// snapshot returns the lines collected so far.
func (s *logSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics, parses it as the Prometheus text format (as a
// Prometheus server would), and lints it with the rules of promtool
// check metrics.
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("/metrics content type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	probs, err := promlint.NewWithMetricFamilies(valuesOf(mfs)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	return mfs
}

func valuesOf(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// value returns the value of the metric name with the labels given
// (name=value pairs), and whether it is there. For a histogram it is the
// sample count.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsDuringTraffic runs the gateway, subscribes 100 clients over
// real sockets, publishes 200 times through the API from 4 goroutines
// while scraping /metrics, ends
// connections three ways, and checks that the exposition parses, passes
// promtool's lint rules, and counts what the clients counted. It also
// checks /healthz, /readyz and the JSON debug logs of connections.
func TestMetricsDuringTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	ws, api, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	logs := run(t, bin, "admin listening", "-addr", ws, "-api-addr", api, "-admin", admin,
		"-token-hmac-secret", "s", "-api-key", "k", "-log-format", "json", "-log-level", "debug")
	for _, path := range []string{"/healthz", "/readyz"} {
		if st, body := httpGet(t, "http://"+admin+path); st != 200 || body != "ok\n" {
			t.Fatalf("%s: %d %q", path, st, body)
		}
	}

	// An upgrade on another path is refused with 404.
	if st := upgradeStatus(t, ws, "/nope"); st != 404 {
		t.Fatalf("upgrade of /nope: %d", st)
	}

	const clients, pubs, channel = 100, 200, "news:metrics"
	var received atomic.Int64
	var wg sync.WaitGroup
	var cs []*wsClient
	for i := range clients {
		c := dialWS(t, ws)
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": fmt.Sprint("u", i)}).SignedString([]byte("s"))
		c.call("connect", map[string]any{"token": tok})
		c.call("subscribe", map[string]any{"channel": channel})
		cs = append(cs, c)
	}
	// Each client counts its publications, then the close code it got.
	codes := make([]int, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, code, err := c.read()
				if err != nil || p == nil {
					codes[i] = code
					return
				}
				if strings.Contains(string(p), `"pub"`) {
					received.Add(1)
				}
			}
		}()
	}
	post := func(method, body string) error {
		req, _ := http.NewRequest("POST", "http://"+api+"/api/"+method, strings.NewReader(body))
		req.Header.Set("X-API-Key", "k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), `"error"`) {
			return fmt.Errorf("%s: %d %s", method, resp.StatusCode, b)
		}
		return nil
	}
	// Publishers post from several goroutines while /metrics is scraped
	// in a loop: every scrape parses and lints, and the counters never go
	// down nor past what was published.
	const publishers = 4
	var pubWG sync.WaitGroup
	pubErr := make(chan error, publishers)
	for p := range publishers {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := p; i < pubs; i += publishers {
				if err := post("publish", fmt.Sprintf(`{"channel":%q,"data":{"i":%d}}`, channel, i)); err != nil {
					pubErr <- err
					return
				}
			}
		}()
	}
	published := make(chan struct{})
	go func() { pubWG.Wait(); close(published) }()
	var lastDeliveries float64
	scrapes := 0
	for done := false; !done; {
		select {
		case <-published:
			done = true
		default:
		}
		v, _ := value(scrape(t, admin), "wsgate_deliveries_total")
		if v < lastDeliveries || v > clients*pubs {
			t.Fatalf("wsgate_deliveries_total went from %v to %v (at most %d)", lastDeliveries, v, clients*pubs)
		}
		lastDeliveries = v
		scrapes++
	}
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	t.Logf("%d scrapes during %d publications to %d clients", scrapes, pubs, clients)
	waitFor(t, "every publication at every client", func() bool { return received.Load() == clients*pubs })
	mfs := scrape(t, admin)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgate_connects_total", nil, clients},
		{"wsgate_clients", nil, clients},
		{"wsgate_connections", []string{"state", "open"}, clients},
		{"wsgate_connections", []string{"state", "handshaking"}, 0},
		{"wsgate_subscriptions", nil, clients},
		{"wsgate_channels", nil, 1},
		{"wsgate_deliveries_total", nil, float64(received.Load())},
		{"wsgate_publications_total", []string{"source", "api"}, pubs},
		{"wsgate_publications_total", []string{"source", "broker"}, pubs},
		{"wsgate_publications_total", []string{"source", "client"}, 0},
		{"wsgate_broker_publish_duration_seconds", nil, pubs},
		{"wsgate_api_request_duration_seconds", []string{"method", "publish"}, pubs},
		{"wsgate_command_duration_seconds", []string{"method", "connect"}, clients},
		{"wsgate_command_duration_seconds", []string{"method", "subscribe"}, clients},
		{"wsgate_messages_in_total", nil, 2 * clients},
		{"wsgate_history_publications", nil, pubs},
		{"wsgate_handshake_rejections_total", []string{"status", "404"}, 1},
	} {
		got, ok := value(mfs, m.name, m.labels...)
		if !ok || got != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "wsgate_bytes_out_total"} {
		if v, ok := value(mfs, name); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}

	// A quarter of the clients closes with 1000, a quarter is disconnected
	// by the API with 4001, a quarter drops the TCP connection (1006); the
	// last quarter stays.
	const quarter = clients / 4
	for i := range quarter {
		cs[i].write(8, binary.BigEndian.AppendUint16(nil, 1000))
		if err := post("disconnect", fmt.Sprintf(`{"user":"u%d","disconnect":{"code":4001,"reason":"test"}}`, quarter+i)); err != nil {
			t.Fatal(err)
		}
		cs[2*quarter+i].c.Close()
	}
	waitFor(t, "closed connections in /metrics", func() bool {
		v, _ := value(scrape(t, admin), "wsgate_connections", "state", "open")
		return v == clients-3*quarter
	})
	mfs = scrape(t, admin)
	seen := map[int]int{}
	for i := range 2 * quarter {
		cs[i].c.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	for _, c := range cs[3*quarter:] {
		c.c.Close()
	}
	wg.Wait()
	for i := range 2 * quarter {
		seen[codes[i]]++
	}
	if seen[1000] != quarter || seen[4001] != quarter {
		t.Errorf("clients saw close codes %v", seen)
	}
	for code, want := range map[string]int{"1000": quarter, "4001": quarter, "1006": quarter} {
		if v, _ := value(mfs, "wsgate_disconnects_total", "code", code); v != float64(want) {
			t.Errorf("wsgate_disconnects_total{code=%q} = %v, want %d", code, v, want)
		}
	}
	if v, _ := value(mfs, "wsgate_clients"); v != clients-3*quarter {
		t.Errorf("wsgate_clients = %v after the closes", v)
	}

	// The debug log of a disconnected client is JSON, with its user and code.
	waitFor(t, "a JSON connection-closed log line", func() bool {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		for _, l := range logs.lines {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["msg"] == "connection closed" &&
				e["user"] == fmt.Sprint("u", quarter) && e["code"] == 4001.0 && e["client"] != "" && e["remote"] != nil {
				return true
			}
		}
		return false
	})
}

// upgradeStatus returns the HTTP status answering an upgrade on path.
func upgradeStatus(t *testing.T, addr, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// TestEchoMetrics runs "wsgate echo" with the admin address: its /metrics
// carries the engine's metrics (and none of the gateway's), counted from
// a real client's echo round trips.
func TestEchoMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	ws, admin := freeAddr(t), freeAddr(t)
	run(t, bin, "admin listening", "echo", "-addr", ws, "-admin", admin)
	c := dialWS(t, ws)
	const msgs = 7
	for i := range msgs {
		if err := c.write(1, []byte(fmt.Sprint("hello ", i))); err != nil {
			t.Fatal(err)
		}
		if p, _, err := c.read(); err != nil || string(p) != fmt.Sprint("hello ", i) {
			t.Fatalf("echo %d: %q %v", i, p, err)
		}
	}
	mfs := scrape(t, admin)
	for name, want := range map[string]float64{"wsgate_messages_in_total": msgs, "wsgate_messages_out_total": msgs} {
		if v, ok := value(mfs, name); v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, _ := value(mfs, "wsgate_connections", "state", "open"); v != 1 {
		t.Errorf("open connections = %v", v)
	}
	if _, ok := mfs["wsgate_clients"]; ok {
		t.Errorf("the echo server exports the gateway's wsgate_clients")
	}
	if st, _ := httpGet(t, "http://"+admin+"/readyz"); st != 200 {
		t.Errorf("/readyz: %d", st)
	}
}

// TestLogFlags checks -v (debug, text format: a connection's open is
// logged) and that bad -log-format and -log-level values are refused with
// status 2, naming the flag.
func TestLogFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	ws := freeAddr(t)
	logs := run(t, bin, "websocket listening", "-addr", ws, "-api-addr", freeAddr(t), "-admin", "", "-v")
	dialWS(t, ws)
	waitFor(t, "a debug line of the connection's open", func() bool {
		return logs.has(`level=DEBUG msg="connection open"`)
	})
	for _, args := range [][]string{{"-log-format", "xml"}, {"-log-level", "loud"}, {"echo", "-log-level", "loud"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), args[len(args)-2]) {
			t.Errorf("wsgate %v: %v %s", args, err, out)
		}
	}
}

// The gateway's collector target is gatewayGCPercent unless GOGC is set
// in the environment.
func TestGatewayGCPercent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	for _, tc := range []struct {
		gogc string
		want float64
	}{{"", gatewayGCPercent}, {"50", 50}} {
		t.Setenv("GOGC", tc.gogc)
		admin := freeAddr(t)
		run(t, bin, "admin listening", "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", admin)
		if v, ok := value(scrape(t, admin), "go_gc_gogc_percent"); v != tc.want {
			t.Errorf("GOGC=%q: go_gc_gogc_percent %v (present %v); want %v", tc.gogc, v, ok, tc.want)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// Drain test sizes: the clients, the drain period and the shutdown
// timeout of the gateway under test, and the publication period.
const (
	drainClients = 5000
	drainPeriod  = 2 * time.Second
	drainTimeout = 10 * time.Second
	pubEvery     = 25 * time.Millisecond
)

// TestDrainOnSIGTERM sends SIGTERM to a real wsgate process while it fans
// publications out to 5,000 clients over real sockets, and checks the
// drain: readiness goes false before the first client is disconnected,
// new connections are refused, every client gets close code 3001 (the
// protocol's "reconnect") with every publication the API had acknowledged
// before the signal and no gap, the disconnects are spread over the drain
// period, and the process exits 0 within the shutdown timeout. The
// clients come from 127.0.0.2-11, so that repeated runs do not run one
// source address out of ports.
func TestDrainOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and opens 5,000 connections")
	}
	bin := filepath.Join(t.TempDir(), "wsgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ws, api := freeAddr(t), freeAddr(t)
	cfg := configFile(t, "drain.yaml", fmt.Sprintf(`
listen: {websocket: %q, api: %q, admin: ""}
client:
  token: {hmac_secret_key: drain-secret}
channel:
  without_namespace: {allow_subscribe_for_client: true}
http_api: {key: k}
shutdown: {drain_period: %s, timeout: %s}
`, ws, api, drainPeriod, drainTimeout))
	if out, err := exec.Command(bin, "checkconfig", "-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("checkconfig: %v %s", err, out)
	}
	out, err := exec.Command(bin, "gentoken", "-user", "drainer", "-config", cfg).Output()
	if err != nil {
		t.Fatalf("gentoken: %v", err)
	}
	token := strings.TrimSpace(string(out))

	proc, logs := startGateway(t, bin, "-config", cfg)
	ready := func() int {
		resp, err := http.Get("http://" + api + "/ready")
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != 200 {
		t.Fatalf("GET /ready before SIGTERM: %d", code)
	}

	// Connect and subscribe every client.
	clients := make([]*drainClient, drainClients)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= drainClients {
					return
				}
				c, err := dialDrainClient(ws, net.IPv4(127, 0, 0, byte(2+i%10)), token)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				clients[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var started time.Time // when SIGTERM was sent
	var sigMu sync.Mutex
	var firstClose sync.Once
	firstReady := make(chan int, 1)
	for _, c := range clients {
		go c.read(func() {
			// The first client to be disconnected asks for readiness at
			// once: the server turned it off before it sent this close,
			// and the API still serves while the node drains.
			firstClose.Do(func() { firstReady <- ready() })
		}, &sigMu, &started)
	}

	// Publish a numbered publication every pubEvery, before and during
	// the drain, until the API stops answering.
	var acked atomic.Int64 // the highest sequence number the API acknowledged
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(pubEvery)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-stopPub:
				return
			case <-tick.C:
			}
			if err := publish(api, seq); err != nil {
				return
			}
			acked.Store(seq)
		}
	}()
	for acked.Load() < 20 {
		time.Sleep(pubEvery)
	}

	// Poll readiness from just before the signal.
	readyOff := make(chan time.Duration, 1)
	go func() {
		for {
			if ready() == http.StatusServiceUnavailable {
				sigMu.Lock()
				readyOff <- time.Since(started)
				sigMu.Unlock()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	sigMu.Lock()
	ackedBefore := acked.Load()
	started = time.Now()
	err = proc.Process.Signal(syscall.SIGTERM)
	sigMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	// New connections are refused once readiness is off.
	var readyAt time.Duration
	select {
	case readyAt = <-readyOff:
	case <-time.After(drainTimeout):
		t.Fatal("GET /ready never answered 503")
	}
	if c, err := dialDrainClient(ws, net.IPv4(127, 0, 0, 12), token); err == nil {
		c.conn.Close()
		t.Error("a client connected during the drain")
	}

	var exitErr error
	var exitAt time.Duration
	select {
	case exitErr = <-proc.exited:
		exitAt = time.Since(started)
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatalf("still running %v after SIGTERM", drainTimeout+5*time.Second)
	}
	close(stopPub)
	<-pubDone
	if exitErr != nil {
		t.Fatalf("exit: %v\n%s", exitErr, logs())
	}
	if exitAt > drainTimeout {
		t.Errorf("exited %v after SIGTERM, configured timeout %v", exitAt, drainTimeout)
	}
	if code := <-firstReady; code != http.StatusServiceUnavailable {
		t.Errorf("GET /ready from the first client disconnected: %d, want 503", code)
	}

	// Every client: code 3001, publications 1..n in order with n at least
	// what was acknowledged before SIGTERM.
	var closes []time.Duration
	bad := 0
	for i, c := range clients {
		c.wait()
		if err := c.check(ackedBefore); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("client %d: %v", i, err)
			}
			continue
		}
		closes = append(closes, c.closeAt)
	}
	if bad > 0 {
		t.Fatalf("%d of %d clients wrong", bad, drainClients)
	}
	slices.Sort(closes)
	first, last := closes[0], closes[len(closes)-1]

	// The timeline, and the spread: per 250 ms, and the busiest 100 ms.
	buckets := make([]int, int(last/(250*time.Millisecond))+1)
	busiest := 0
	for i, at := range closes {
		buckets[at/(250*time.Millisecond)]++
		j, _ := slices.BinarySearch(closes, at+100*time.Millisecond)
		busiest = max(busiest, j-i)
	}
	var rates []string
	for i, n := range buckets {
		rates = append(rates, fmt.Sprintf("%d-%dms: %d", i*250, (i+1)*250, n))
	}
	t.Logf("drain of %d clients (period %v, timeout %v), times from SIGTERM: readiness 503 seen at %v; "+
		"first close %v, last close %v; disconnects per 250 ms: %s; busiest 100 ms: %d; exit at %v; "+
		"publications acknowledged before SIGTERM: %d",
		drainClients, drainPeriod, drainTimeout, readyAt.Round(time.Millisecond), first.Round(time.Millisecond),
		last.Round(time.Millisecond), strings.Join(rates, ", "), busiest, exitAt.Round(time.Millisecond), ackedBefore)
	for _, l := range strings.Split(logs(), "\n") {
		if strings.Contains(l, "shutting down") || strings.Contains(l, "draining") || strings.Contains(l, "stopped") {
			t.Logf("gateway: %s", l)
		}
	}
	if last-first < drainPeriod/2 {
		t.Errorf("disconnects from %v to %v: not spread over the %v drain period", first, last, drainPeriod)
	}
	// Evenly spread, 100 ms hold a twentieth of a 2 s drain: 250 clients.
	// Allow four times that for a test machine that reads late.
	if even := int(drainClients * int64(100*time.Millisecond) / int64(drainPeriod)); busiest > 4*even {
		t.Errorf("%d disconnects within 100 ms, evenly %d: a burst", busiest, even)
	}
}

// gateway is a wsgate process under test.
type gateway struct {
	*exec.Cmd
	exited chan error
}

// startGateway runs bin with args, waits for "api listening" in its log,
// and kills it when the test ends; logs returns its log so far.
func startGateway(t *testing.T, bin string, args ...string) (*gateway, func() string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{Cmd: cmd, exited: make(chan error, 1)}
	var mu sync.Mutex
	var log bytes.Buffer
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "api listening") {
				once.Do(func() { close(up) })
			}
		}
		g.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	select {
	case <-up:
	case err := <-g.exited:
		t.Fatalf("exited before listening: %v\n%s", err, logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("not listening after 20 s:\n%s", logs())
	}
	return g, logs
}

// publish publishes {"seq":seq} to channel "drain" through the API.
func publish(api string, seq int64) error {
	req, _ := http.NewRequest("POST", "http://"+api+"/api/publish",
		strings.NewReader(fmt.Sprintf(`{"channel":"drain","data":{"seq":%d}}`, seq)))
	req.Header.Set("X-API-Key", "k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("publish %d: %d %s", seq, resp.StatusCode, b)
	}
	return nil
}

// drainClient is a Centrifugo client (JSON protocol) over a raw
// WebSocket: it connects with a token, subscribes to "drain", then
// counts the publications' sequence numbers until the server closes.
type drainClient struct {
	conn net.Conn
	br   *bufio.Reader
	done chan struct{}

	last      int64  // the last sequence number, when all came in order
	gap       string // the first publication out of order
	closeCode codec.StatusCode
	closeAt   time.Duration // after SIGTERM
	err       error
}

// dialDrainClient connects from local address ip, upgrades, and sends
// connect and subscribe; it returns once both are answered.
func dialDrainClient(addr string, ip net.IP, token string) (*drainClient, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &drainClient{conn: conn, br: bufio.NewReader(conn), done: make(chan struct{})}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %v %v", resp, err)
	}
	cmds := `{"id":1,"connect":{"token":"` + token + `"}}` + "\n" + `{"id":2,"subscribe":{"channel":"drain"}}`
	if err := c.send(codec.OpText, []byte(cmds)); err != nil {
		conn.Close()
		return nil, err
	}
	for replies := 0; replies < 2; {
		op, p, err := c.next()
		if err != nil || op != codec.OpText {
			conn.Close()
			return nil, fmt.Errorf("connect and subscribe: %v %q %v", op, p, err)
		}
		for _, line := range bytes.Split(p, []byte("\n")) {
			if bytes.Contains(line, []byte(`"error"`)) {
				conn.Close()
				return nil, fmt.Errorf("reply %s", line)
			}
			if bytes.HasPrefix(line, []byte(`{"id":`)) {
				replies++
			}
		}
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *drainClient) send(op codec.OpCode, p []byte) error {
	_, err := c.conn.Write(codec.AppendFrame(nil, codec.Header{Fin: true, OpCode: op, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, p))
	return err
}

// next reads one unfragmented frame (the gateway sends no fragments).
func (c *drainClient) next() (codec.OpCode, []byte, error) {
	var hb [codec.MaxHeaderSize]byte
	if _, err := io.ReadFull(c.br, hb[:2]); err != nil {
		return 0, nil, err
	}
	n := 2
	switch hb[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if _, err := io.ReadFull(c.br, hb[2:n]); err != nil {
		return 0, nil, err
	}
	h, _, err := codec.ParseHeader(hb[:n])
	if err != nil {
		return 0, nil, err
	}
	if !h.Fin {
		return 0, nil, errors.New("fragmented message")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return 0, nil, err
	}
	return h.OpCode, p, nil
}

var seqKey = []byte(`"seq":`)

// read counts publications until the close frame, which it answers;
// onClose runs when it arrives. started (under mu) is when SIGTERM was
// sent.
func (c *drainClient) read(onClose func(), mu *sync.Mutex, started *time.Time) {
	defer close(c.done)
	defer c.conn.Close()
	c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		op, p, err := c.next()
		if err != nil {
			c.err = err
			return
		}
		switch op {
		case codec.OpClose:
			mu.Lock()
			c.closeAt = time.Since(*started)
			mu.Unlock()
			c.closeCode, _, _ = codec.ParseClose(p)
			onClose()
			_ = c.send(codec.OpClose, p)
			return
		case codec.OpText:
			for _, line := range bytes.Split(p, []byte("\n")) {
				i := bytes.Index(line, seqKey)
				if i < 0 {
					continue // a server ping
				}
				rest := line[i+len(seqKey):]
				j := bytes.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
				seq, err := strconv.ParseInt(string(rest[:max(j, 0)]), 10, 64)
				if err != nil || seq != c.last+1 {
					if c.gap == "" {
						c.gap = fmt.Sprintf("publication %s after %d", line, c.last)
					}
					continue
				}
				c.last = seq
			}
		}
	}
}

func (c *drainClient) wait() {
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.conn.Close()
		<-c.done
		if c.closeCode == 0 {
			c.err = errors.New("no close frame 10 s after the gateway exited")
		}
	}
}

// check reports what is wrong with what the client saw: not closed with
// 3001, a publication out of order, or fewer than acked.
func (c *drainClient) check(acked int64) error {
	switch {
	case c.closeCode != 3001:
		return fmt.Errorf("closed with %d (read error %v), want 3001", c.closeCode, c.err)
	case c.gap != "":
		return errors.New(c.gap)
	case c.last < acked:
		return fmt.Errorf("got publications 1..%d, the API had acknowledged %d before SIGTERM", c.last, acked)
	}
	return nil
}

// Command wsattack puts a WebSocket server under hostile load while one
// healthy client measures what a real user would notice.
//
//	wsattack -addr 127.0.0.1:8080 -partial 15000 -trickle 1000 -stalled 200 \
//	    -bcast-rate 20 -duration 60s -stats http://127.0.0.1:6060/stats
//
// The hostile clients, each kind re-dialled -redial after the server drops
// it until the run ends:
//   - partial: sends "GET / HTTP/1.1\r\nHost: x\r\n" and never finishes the
//     request;
//   - trickle: upgrades, announces a binary frame of -trickle-size bytes,
//     sends all but 64 of them and then one byte every -trickle-every;
//   - stalled: upgrades with a 4 KiB receive buffer and never reads
//     (broadcasts pile up for it);
//   - bomb: negotiates permessage-deflate and sends, as fast as it can,
//     messages of ~1 KiB that inflate to -bomb-size bytes of zeros.
//
// The healthy side: a publisher sends "BCAST <-bcast-size bytes>" at
// -bcast-rate (cmd/wsgate echo -broadcast sends it to every connection),
// and an echo client sends a 64-byte text message every 10 ms and times
// its echo. The server's RSS is sampled from -stats (cmd/wsgate's admin
// /stats). It exits 1 if the echo client lost its connection, missed an
// echo, or its p99 was above -max-p99, or if the server stopped answering.
package main

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	addr         = flag.String("addr", "127.0.0.1:8080", "server address")
	path         = flag.String("path", "/", "upgrade request path")
	partialN     = flag.Int("partial", 15000, "clients that never finish their upgrade request")
	trickleN     = flag.Int("trickle", 1000, "clients that trickle a large message")
	trickleSize  = flag.Int("trickle-size", 1<<20, "announced size of a trickled message")
	trickleEvery = flag.Duration("trickle-every", 20*time.Second, "one byte of a trickled message this often, once all but 64 are sent")
	stalledN     = flag.Int("stalled", 200, "upgraded clients that never read")
	bombN        = flag.Int("bomb", 0, "clients that send compressed messages inflating to -bomb-size, as fast as they can")
	bombSize     = flag.Int("bomb-size", 1<<20, "inflated size of a bomb (zeros)")
	bcastRate    = flag.Float64("bcast-rate", 20, "BCAST messages per second from the publisher (0: none)")
	bcastSize    = flag.Int("bcast-size", 1024, "bytes per broadcast")
	duration     = flag.Duration("duration", 60*time.Second, "length of the attack")
	statsURL     = flag.String("stats", "", "the server's /stats URL, for its RSS")
	maxP99       = flag.Duration("max-p99", 50*time.Millisecond, "fail if the healthy client's p99 echo time is above this")
	sources      = flag.Int("sources", 40, "source addresses 127.0.0.2… spread the hostile clients over")
	redial       = flag.Duration("redial", time.Second, "a hostile client dropped by the server dials again after this long")
)

type counters struct {
	dials, refused, closed atomic.Int64
}

func main() {
	flag.Parse()
	raiseFileLimit()
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()

	var partial, trickle, stalled, bomb counters
	var wg sync.WaitGroup
	spawn := func(n int, c *counters, run func(context.Context, net.Conn, *counters)) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hostile(ctx, i, c, run)
			}()
		}
	}
	healthyDone := make(chan healthyResult, 1)
	go func() { healthyDone <- healthy(ctx) }()
	if *bcastRate > 0 {
		go publisher(ctx)
	}
	spawn(*stalledN, &stalled, runStalled)
	spawn(*trickleN, &trickle, runTrickle)
	spawn(*partialN, &partial, runPartial)
	spawn(*bombN, &bomb, runBomb)

	var maxRSS int64
	cpu0, _ := serverStats()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	statsFailed := false
	report := func() {
		rss, err := serverRSS()
		if err != nil && *statsURL != "" {
			statsFailed = true
			fmt.Printf("stats: %v\n", err)
		}
		maxRSS = max(maxRSS, rss)
		fmt.Printf("%s rss %.1f MiB | partial dials %d refused %d | trickle dials %d closed %d | stalled dials %d closed %d | bomb dials %d closed %d\n",
			time.Now().Format("15:04:05"), float64(rss)/(1<<20),
			partial.dials.Load(), partial.refused.Load(), trickle.dials.Load(), trickle.closed.Load(),
			stalled.dials.Load(), stalled.closed.Load(), bomb.dials.Load(), bomb.closed.Load())
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			report()
		}
	}
	report()
	if cpu1, err := serverStats(); err == nil && *statsURL != "" {
		fmt.Printf("server CPU %.1f s in %v\n", cpu1.CPU-cpu0.CPU, *duration)
	}
	h := <-healthyDone
	wg.Wait()
	fmt.Printf("healthy echo: %d sent, %d echoed, p50 %v p99 %v max %v, error: %v\n",
		h.sent, len(h.rtts), h.pct(0.50), h.pct(0.99), h.pct(1), h.err)
	fmt.Printf("server RSS max %.1f MiB\n", float64(maxRSS)/(1<<20))
	if _, err := serverRSS(); err != nil && *statsURL != "" {
		statsFailed = true
	}
	switch {
	case h.err != nil:
		fail("the healthy client failed: %v", h.err)
	case len(h.rtts) < h.sent-1:
		fail("%d echoes missing", h.sent-len(h.rtts))
	case h.pct(0.99) > *maxP99:
		fail("healthy p99 %v above %v", h.pct(0.99), *maxP99)
	case statsFailed:
		fail("the server's stats stopped answering")
	}
	fmt.Println("ok")
}

func fail(format string, args ...any) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// hostile runs one hostile client until ctx ends, dialling again -redial
// after the server drops it.
func hostile(ctx context.Context, i int, c *counters, run func(context.Context, net.Conn, *counters)) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%*sources))}}
	for ctx.Err() == nil {
		next := time.Now().Add(*redial)
		conn, err := d.DialContext(ctx, "tcp", *addr)
		if err == nil {
			c.dials.Add(1)
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			run(ctx, conn, c)
			stop()
			conn.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
	}
}

func runPartial(_ context.Context, conn net.Conn, c *counters) {
	if _, err := conn.Write([]byte("GET " + *path + " HTTP/1.1\r\nHost: x\r\n")); err != nil {
		return
	}
	// Refused: closed unanswered at accept, or answered 503.
	start := time.Now()
	b, _ := io.ReadAll(conn)
	if len(b) == 0 && time.Since(start) < time.Second || bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) {
		c.refused.Add(1)
	}
}

func runStalled(_ context.Context, conn net.Conn, c *counters) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	if upgrade(conn) != nil {
		return
	}
	// Never read: wait for the connection to end (a write fails once the
	// server has closed it, or the run is over).
	for {
		time.Sleep(time.Second)
		if _, err := conn.Write(maskedFrame(0x8A, nil)); err != nil { // unsolicited pong
			c.closed.Add(1)
			return
		}
	}
}

func runTrickle(ctx context.Context, conn net.Conn, c *counters) {
	if upgrade(conn) != nil {
		return
	}
	gone := make(chan struct{}) // closed when the server ends the connection
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(gone)
	}()
	hdr := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(hdr[2:10], uint64(*trickleSize))
	if _, err := conn.Write(hdr); err != nil { // mask key 0: the payload is sent as is
		return
	}
	chunk := make([]byte, 64<<10)
	for left := *trickleSize - 64; left > 0; {
		n := min(left, len(chunk))
		if _, err := conn.Write(chunk[:n]); err != nil {
			c.closed.Add(1)
			return
		}
		left -= n
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			c.closed.Add(1)
			return
		case <-time.After(*trickleEvery):
		}
		if _, err := conn.Write([]byte{0}); err != nil {
			c.closed.Add(1)
			return
		}
	}
}

// upgrade sends an upgrade request and reads the response header.
func upgrade(conn net.Conn) error { return upgradeWith(conn, "") }

// upgradeWith is upgrade with extra header lines.
func upgradeWith(conn net.Conn, extra string) error {
	var k [16]byte
	_, _ = rand.Read(k[:])
	req := "GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(k[:]) + "\r\n" + extra + "\r\n"
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	var resp []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		if _, err := conn.Read(b); err != nil { // byte by byte: nothing after the header is consumed
			return err
		}
		resp = append(resp, b[0])
		if len(resp) > 8192 {
			return errors.New("response header too long")
		}
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
		return fmt.Errorf("upgrade answered %q", strings.SplitN(string(resp), "\r\n", 2)[0])
	}
	return nil
}

// maskedFrame is a final client frame with opcode byte b0 and a zero mask.
func maskedFrame(b0 byte, p []byte) []byte {
	var f []byte
	switch n := len(p); {
	case n < 126:
		f = []byte{b0, 0x80 | byte(n)}
	case n < 1<<16:
		f = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		f = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, uint64(n))
	}
	return append(append(f, 0, 0, 0, 0), p...)
}

// readFrame reads one unfragmented server frame.
func readFrame(r io.Reader) (op byte, p []byte, err error) {
	var h [10]byte
	if _, err = io.ReadFull(r, h[:2]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err = io.ReadFull(r, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err = io.ReadFull(r, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > 16<<20 {
		return 0, nil, errors.New("frame above 16 MiB")
	}
	p = make([]byte, n)
	_, err = io.ReadFull(r, p)
	return h[0] & 0x0F, p, err
}

type healthyResult struct {
	sent int
	rtts []time.Duration
	err  error
}

func (h *healthyResult) pct(q float64) time.Duration {
	if len(h.rtts) == 0 {
		return 0
	}
	s := slices.Clone(h.rtts)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// healthy echoes a 64-byte message every 10 ms and times each echo;
// broadcasts arriving between are skipped.
func healthy(ctx context.Context) (res healthyResult) {
	conn, err := net.Dial("tcp", *addr)
	if err != nil {
		res.err = err
		return res
	}
	defer conn.Close()
	if res.err = upgrade(conn); res.err != nil {
		return res
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
		msg := fmt.Sprintf("healthy %08d %s", res.sent, strings.Repeat("x", 47))
		start := time.Now()
		_ = conn.SetDeadline(start.Add(5 * time.Second))
		if _, err := conn.Write(maskedFrame(0x81, []byte(msg))); err != nil {
			res.err = err
			return res
		}
		res.sent++
		for {
			op, p, err := readFrame(conn)
			if err != nil {
				res.err = fmt.Errorf("echo %d: %w", res.sent, err)
				return res
			}
			if op == 0x8 {
				res.err = fmt.Errorf("closed by the server: %x", p)
				return res
			}
			if op == 0x1 && string(p) == msg {
				break
			}
		}
		res.rtts = append(res.rtts, time.Since(start))
	}
}

// publisher sends BCAST messages at -bcast-rate and discards what it
// receives.
func publisher(ctx context.Context) {
	conn, err := net.Dial("tcp", *addr)
	if err != nil || upgrade(conn) != nil {
		fmt.Println("publisher: could not connect")
		return
	}
	defer conn.Close()
	go func() { _, _ = io.Copy(io.Discard, conn) }()
	msg := maskedFrame(0x81, append([]byte("BCAST "), bytes.Repeat([]byte("b"), *bcastSize)...))
	tick := time.NewTicker(time.Duration(float64(time.Second) / *bcastRate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := conn.Write(msg); err != nil {
			fmt.Println("publisher:", err)
			return
		}
	}
}

type stats struct {
	RSS int64   `json:"rss_bytes"`
	CPU float64 `json:"cpu_seconds"`
}

func serverStats() (st stats, err error) {
	if *statsURL == "" {
		return st, nil
	}
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(*statsURL)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func serverRSS() (int64, error) {
	st, err := serverStats()
	return st.RSS, err
}

func runBomb(ctx context.Context, conn net.Conn, c *counters) {
	if upgradeWith(conn, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n") != nil {
		return
	}
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(make([]byte, *bombSize))
	_ = w.Flush()
	z := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	frame := maskedFrame(0xC2, z) // FIN, RSV1, binary
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(gone)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			c.closed.Add(1)
			return
		default:
		}
		if _, err := conn.Write(frame); err != nil {
			c.closed.Add(1)
			return
		}
	}
}

func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

//go:build !race && !windows

package loop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// The idle-memory test opens many connections from a separate process (the
// test binary re-executed as a client, because of the 20,000 open-files
// limit per process) and reports the server's heap and RSS per connection.
// It runs without -race only: the race detector's shadow memory would
// drown the figures.

// TestIdleClientProcess is the client side; it does nothing unless started
// by startClients.
func TestIdleClientProcess(t *testing.T) {
	addr := os.Getenv("WSGATE_IDLE_ADDR")
	if addr == "" {
		t.Skip("client process only")
	}
	n, _ := strconv.Atoi(os.Getenv("WSGATE_IDLE_N"))
	upgradeFirst := os.Getenv("WSGATE_IDLE_UPGRADE") != ""
	req := upgradeRequest
	if os.Getenv("WSGATE_IDLE_UPGRADE") == "deflate" {
		req = withDeflateOffer(req)
	}
	tail := []byte(os.Getenv("WSGATE_IDLE_TAIL")) // bytes sent after the upgrade
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := dialIdle(addr, upgradeFirst, req, tail)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Printf("ERROR %v\n", err)
	default:
		fmt.Printf("READY %d\n", n)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func dialIdle(addr string, upgradeFirst bool, req string, tail []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if upgradeFirst {
		if _, err := io.WriteString(c, req); err != nil {
			c.Close()
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReaderSize(c, 256)
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, " 101 ") {
			c.Close()
			return nil, fmt.Errorf("upgrade: %q %v", line, err)
		}
		for line != "\r\n" && err == nil {
			line, err = br.ReadString('\n')
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	if len(tail) > 0 {
		if _, err := c.Write(tail); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// startClients runs the client process and waits until its n connections
// are established; the returned func closes them. up is "" (no upgrade),
// "1" (upgrade) or "deflate" (upgrade offering permessage-deflate).
func startClients(t *testing.T, addr string, n int, up string, tail []byte) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "WSGATE_IDLE_ADDR="+addr, "WSGATE_IDLE_N="+strconv.Itoa(n),
		"WSGATE_IDLE_UPGRADE="+up, "WSGATE_IDLE_TAIL="+string(tail))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "READY") {
			break
		}
		if strings.HasPrefix(line, "ERROR") {
			stdin.Close()
			cmd.Wait()
			t.Fatalf("client process: %s", line)
		}
	}
	go io.Copy(io.Discard, stdout)
	return func() {
		stdin.Close()
		cmd.Wait()
	}
}

type memSample struct {
	heap, rss  int64
	goroutines int
}

func sampleMem() memSample {
	runtime.GC() // twice: the first moves sync.Pool contents to the victim cache
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return memSample{int64(ms.HeapInuse), pages * int64(os.Getpagesize()), runtime.NumGoroutine()}
}

// topicHandler subscribes each connection to n of 100 topics.
type topicHandler struct {
	nopHandler
	s *Server
	n int
	i atomic.Int64
}

func (h *topicHandler) OnOpen(c *Conn) {
	for range h.n {
		_ = h.s.Subscribe(c, strconv.Itoa(int(h.i.Add(1)%100)))
	}
}

// rawServer is a bare gnet server that either consumes all input or leaves
// it in gnet's buffer, to measure what gnet keeps per connection.
type rawServer struct {
	gnet.BuiltinEventEngine
	keep   bool
	booted chan struct{}
	eng    gnet.Engine
}

func (r *rawServer) OnBoot(e gnet.Engine) gnet.Action { r.eng = e; close(r.booted); return gnet.None }
func (r *rawServer) OnTraffic(c gnet.Conn) gnet.Action {
	if !r.keep {
		_, _ = c.Next(-1)
	}
	return gnet.None
}

// idleConns is the number of connections of a memory test: 10,000 or
// WSGATE_IDLE_CONNS. Such tests do not run with -short.
func idleConns(t *testing.T) int {
	if testing.Short() {
		t.Skip("opens 10,000 connections")
	}
	if s := os.Getenv("WSGATE_IDLE_CONNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("WSGATE_IDLE_CONNS=%q: want a positive number", s)
		}
		return n
	}
	return 10000
}

// TestIdleMemory measures heap and RSS per idle connection for wsgate
// (idle after the upgrade, and holding a partial frame header), and for a
// bare gnet server that consumes all input or leaves a partial frame in
// gnet. Set WSGATE_IDLE_CONNS to change the count (default 10,000).
func TestIdleMemory(t *testing.T) {
	n := idleConns(t)
	partial := []byte{0x82, 0x85, 1} // 3 of the 6 header bytes of a masked frame
	report := func(name string, before, after memSample) {
		heap := float64(after.heap-before.heap) / float64(n)
		rss := float64(after.rss-before.rss) / float64(n)
		t.Logf("%-34s heap %7.0f B/conn  rss %7.0f B/conn  goroutines %d -> %d",
			name, heap, rss, before.goroutines, after.goroutines)
	}

	for _, tc := range []struct {
		name   string
		tail   []byte
		topics int // each connection subscribes to this many topics
	}{
		{"wsgate idle after upgrade", nil, 0},
		{"wsgate holding 3-byte partial header", partial, 0},
		{"wsgate idle, 1 topic each", nil, 1},
		{"wsgate idle, 4 topics each", nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			h := &topicHandler{n: tc.topics}
			s, err := NewServer(h, Options{NumLoops: 2})
			if err != nil {
				t.Fatal(err)
			}
			h.s = s
			if err := s.Start(addr); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			before := sampleMem()
			stop := startClients(t, addr, n, "1", tc.tail)
			defer stop()
			waitFor(t, "connections", func() bool {
				return s.Conns() == n && s.Stats().Subscriptions == int64(n*tc.topics)
			})
			time.Sleep(200 * time.Millisecond) // let the tails arrive
			after := sampleMem()
			report(tc.name, before, after)
			// No goroutine per connection.
			if d := after.goroutines - before.goroutines; d > 4 {
				t.Errorf("goroutines grew by %d with %d connections", d, n)
			}
			if heap := (after.heap - before.heap) / int64(n); tc.tail == nil && tc.topics == 0 && heap > 1024 {
				t.Errorf("heap per idle connection = %d B; want <= 1 KiB", heap)
			}
		})
	}

	for _, tc := range []struct {
		name string
		keep bool
	}{{"bare gnet, input consumed", false}, {"bare gnet, 3 bytes left in gnet", true}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			r := &rawServer{keep: tc.keep, booted: make(chan struct{})}
			done := make(chan error, 1)
			go func() {
				done <- gnet.Run(r, "tcp://"+addr, gnet.WithNumEventLoop(2), gnet.WithReusePort(true),
					gnet.WithLogger(slogAdapter{slog.New(slog.NewTextHandler(io.Discard, nil))}))
			}()
			<-r.booted
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				r.eng.Stop(ctx)
				<-done
			}()
			before := sampleMem()
			stop := startClients(t, addr, n, "", partial)
			defer stop()
			waitFor(t, "connections", func() bool { return r.eng.CountConnections() == n })
			time.Sleep(200 * time.Millisecond)
			after := sampleMem()
			report(tc.name, before, after)
		})
	}
}

// greetHandler sends each connection one compressible message on open.
type greetHandler struct{ nopHandler }

// greeting is 2 KiB of market-data JSON: compressed when deflate is on.
var greeting = []byte(strings.Repeat(`{"s":"BTC-USD","p":"97123.50","q":"0.0125","t":1732200000}`, 35))

func (greetHandler) OnOpen(c *Conn) { _ = c.WriteMessage(codec.OpText, greeting) }

// TestIdleMemoryDeflate measures what permessage-deflate adds to an idle
// connection: each connection gets one 2 KiB message on open, then stays
// idle. Against the same run without deflate, no context takeover must add
// nothing, and server context takeover nothing once the History has been
// released (its size, 4 KiB, is held until then). Set WSGATE_IDLE_CONNS to
// change the count (default 10,000).
func TestIdleMemoryDeflate(t *testing.T) {
	n := idleConns(t)
	const idle = time.Second // HistoryIdle of the released case
	type result struct {
		heap, rss float64
		ext, hist int // connections with extension state, with a History
	}
	run := func(t *testing.T, cfg *deflate.Config, wait time.Duration) result {
		addr := freeAddr(t)
		const loops = 2
		s, err := NewServer(greetHandler{}, Options{NumLoops: loops, Deflate: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(addr); err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown(context.Background())
		up := "1"
		if cfg != nil {
			up = "deflate"
		}
		// Each loop's Compressor (a flate.Writer, ~0.8 MB) is allocated
		// on its first message; it is per loop, not per connection, so
		// it goes into the baseline: connections get their greeting until
		// every loop has seen one (the kernel spreads them over the loops'
		// SO_REUSEPORT listeners by hash, so it may take a few).
		req := upgradeRequest
		if cfg != nil {
			req = withDeflateOffer(req)
		}
		warm := func() bool {
			n := 0
			onLoops(s, func(ls *loopState) {
				if cfg == nil || ls.comp != nil {
					n++
				}
			})
			return n == loops
		}
		for i := 0; !warm(); i++ {
			if i == 64 {
				t.Fatalf("64 warm-up connections did not reach all %d loops", loops)
			}
			c, err := dialIdle(addr, true, req, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		waitFor(t, "warm-up connections closed", func() bool { return s.Conns() == 0 })
		before := sampleMem()
		stop := startClients(t, addr, n, up, nil)
		defer stop()
		waitFor(t, "connections", func() bool { return s.Conns() == n })
		time.Sleep(wait)
		after := sampleMem()
		r := result{
			heap: float64(after.heap-before.heap) / float64(n),
			rss:  float64(after.rss-before.rss) / float64(n),
			ext:  countConns(s, func(c *Conn) bool { return c.ext != nil }),
			hist: countConns(s, func(c *Conn) bool { return c.more() != nil && c.more().dfl != nil && c.more().dfl.send.Len() > 0 }),
		}
		t.Logf("heap %7.0f B/conn  rss %7.0f B/conn  %d with extension state, %d with a History", r.heap, r.rss, r.ext, r.hist)
		return r
	}
	var plain, again, noTakeover, held, released result
	t.Run("plain", func(t *testing.T) { plain = run(t, nil, 200*time.Millisecond) })
	t.Run("deflate", func(t *testing.T) { noTakeover = run(t, &deflate.Config{}, 200*time.Millisecond) })
	t.Run("takeover held", func(t *testing.T) {
		held = run(t, &deflate.Config{ServerContextTakeover: true}, 200*time.Millisecond)
	})
	t.Run("takeover released", func(t *testing.T) {
		released = run(t, &deflate.Config{ServerContextTakeover: true, HistoryIdle: idle}, idle+500*time.Millisecond)
	})
	t.Run("plain again", func(t *testing.T) { again = run(t, nil, 200*time.Millisecond) })
	t.Logf("per connection against plain: deflate %+.0f B heap %+.0f B rss; takeover with History %+.0f / %+.0f; "+
		"after release %+.0f / %+.0f; plain again (noise) %+.0f / %+.0f",
		noTakeover.heap-plain.heap, noTakeover.rss-plain.rss, held.heap-plain.heap, held.rss-plain.rss,
		released.heap-plain.heap, released.rss-plain.rss, again.heap-plain.heap, again.rss-plain.rss)

	// The exact claim is structural: a deflate connection without a
	// History has no state beyond a plain one (its Params sit in padding
	// of Conn, and ext stays nil). The heap figures come from separate
	// runs, which differ by a few tens of bytes per connection even when
	// identical ("plain again": up to ~300 KB in all); they must agree
	// within that.
	noise := max(64.0, 400e3/float64(n))
	if n := plain.ext + noTakeover.ext + released.ext + again.ext; n != 0 {
		t.Errorf("connections with extension state: plain %d, deflate %d, takeover released %d, plain again %d; want 0",
			plain.ext, noTakeover.ext, released.ext, again.ext)
	}
	if held.hist != n {
		t.Errorf("takeover: %d of %d connections hold a History before the release; the test measures nothing", held.hist, n)
	}
	if d := noTakeover.heap - plain.heap; d > noise || d < -noise {
		t.Errorf("deflate without takeover adds %.0f B heap per idle connection; want 0 (±%.0f)", d, noise)
	}
	if d := released.heap - plain.heap; d > noise || d < -noise {
		t.Errorf("takeover after the idle release adds %.0f B heap per connection; want 0 (±%.0f)", d, noise)
	}
	if d := held.heap - plain.heap; d < 4096 {
		t.Errorf("takeover with a 4 KiB History adds only %.0f B per connection: the History is not measured", d)
	}
}

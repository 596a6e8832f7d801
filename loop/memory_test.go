//go:build !race

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
	upgradeFirst := os.Getenv("WSGATE_IDLE_UPGRADE") == "1"
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
				c, err := dialIdle(addr, upgradeFirst, tail)
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

func dialIdle(addr string, upgradeFirst bool, tail []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if upgradeFirst {
		if _, err := io.WriteString(c, upgradeRequest); err != nil {
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
// are established; the returned func closes them.
func startClients(t *testing.T, addr string, n int, upgradeFirst bool, tail []byte) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientProcess$", "-test.v")
	up := "0"
	if upgradeFirst {
		up = "1"
	}
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

// TestIdleMemory measures heap and RSS per idle connection for wsgate
// (idle after the upgrade, and holding a partial frame header), and for a
// bare gnet server that consumes all input or leaves a partial frame in
// gnet. Set WSGATE_IDLE_CONNS to change the count (default 10,000).
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections")
	}
	n := 10000
	if s := os.Getenv("WSGATE_IDLE_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
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
			stop := startClients(t, addr, n, true, tc.tail)
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
			if heap := (after.heap - before.heap) / int64(n); tc.tail == nil && heap > 1024 {
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
			stop := startClients(t, addr, n, false, partial)
			defer stop()
			waitFor(t, "connections", func() bool { return r.eng.CountConnections() == n })
			time.Sleep(200 * time.Millisecond)
			after := sampleMem()
			report(tc.name, before, after)
		})
	}
}

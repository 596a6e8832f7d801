//go:build linux

package loop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// BenchmarkSharedFanout publishes b.N market-data ticks (100–200 bytes of
// JSON) at WSGATE_FANOUT_RATE per second (default 20) to
// WSGATE_FANOUT_SUBS subscribers of one topic (default 2,000; 10,000
// works: the clients run in a child process) and reports, per delivered
// tick, the wire bytes against the tick's size and the CPU time of the
// server's event-loop threads:
//
//   - plain: the clients offer no deflate;
//   - per-conn: they offer deflate with context takeover, under
//     SlowDropOldest, which keeps them out of shared streams: each tick is
//     compressed once without history (not at all under 512 bytes) and
//     added to each connection's History, as before shared streams;
//   - shared: the same under SlowDisconnect: each tick is compressed once
//     per loop with the stream's History and the same frame goes to
//     every member.
//
// Run with -benchtime=200x or so (each tick takes 1/rate seconds).
func BenchmarkSharedFanout(b *testing.B) {
	subs := envInt("WSGATE_FANOUT_SUBS", 2000)
	rate := envInt("WSGATE_FANOUT_RATE", 20)
	for _, mode := range []struct {
		name   string
		offer  string
		policy SlowPolicy
	}{
		{"plain", "", SlowDisconnect},
		{"per-conn", "permessage-deflate", SlowDropOldest},
		{"shared", "permessage-deflate", SlowDisconnect},
	} {
		b.Run(mode.name, func(b *testing.B) {
			o := Options{Deflate: &deflate.Config{ServerContextTakeover: true}, MaxConns: subs + 10}
			s, h, addr := startSubServer(b, mode.policy, o)
			child := startFanoutClients(b, addr, subs, mode.offer)
			deadline := time.Now().Add(time.Minute)
			for h.nOpen() < subs || s.Stats().Subscriptions < int64(subs) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d subscribers", h.nOpen(), subs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			tids := loopThreads(s)
			g := newTickGen(1)
			ticks := make([][]byte, b.N)
			var size int
			for i := range ticks {
				ticks[i] = g.next(fmt.Sprintf(`"ch":"md.crypto","seq":%d,`, 1000000+i))
				size += len(ticks[i])
			}
			// A warm-up tick, so that every stream and compressor exists.
			pm, _ := s.Prepare(codec.OpText, g.next(""), "")
			_ = s.Publish("t", pm)
			time.Sleep(200 * time.Millisecond)
			st0, cpu0 := s.Stats(), threadsCPU(b, tids)
			b.ResetTimer()
			next := time.Now()
			for _, p := range ticks {
				pm, err := s.Prepare(codec.OpText, p, "")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Publish("t", pm); err != nil {
					b.Fatal(err)
				}
				next = next.Add(time.Second / time.Duration(rate))
				time.Sleep(time.Until(next))
			}
			for d := time.Now().Add(10 * time.Second); s.Stats().Delivered-st0.Delivered < int64(b.N*subs); {
				if time.Now().After(d) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the last flushes
			b.StopTimer()
			st1, cpu1 := s.Stats(), threadsCPU(b, tids)
			got := child.stop(b)
			n := st1.Delivered - st0.Delivered
			if n != int64(b.N*subs) {
				b.Errorf("%d deliveries; want %d", n, b.N*subs)
			}
			out := st1.BytesOut - st0.BytesOut
			ratio := float64(out) / float64(size*subs)
			b.ReportMetric(ratio, "wire/tick")
			b.ReportMetric(float64(cpu1-cpu0)/float64(n), "loop-ns/delivery")
			b.ReportMetric(float64(size)/float64(b.N), "B/tick")
			b.Logf("%d subscribers, %d ticks of %d B on average: %d bytes out (%.3f of the ticks), clients read %d, loop CPU %v",
				subs, b.N, size/b.N, out, ratio, got, time.Duration(cpu1-cpu0))
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// loopThreads locks each event loop of s to its thread and returns the
// threads' ids.
func loopThreads(s *Server) []int {
	var mu sync.Mutex
	var tids []int
	onLoops(s, func(*loopState) {
		runtime.LockOSThread() // for the loop's life: its CPU time is the thread's
		mu.Lock()
		tids = append(tids, unix.Gettid())
		mu.Unlock()
	})
	return tids
}

// threadsCPU returns the CPU time of the threads, in nanoseconds.
func threadsCPU(b *testing.B, tids []int) int64 {
	var sum int64
	for _, tid := range tids {
		p, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
		if err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseInt(strings.Fields(string(p))[0], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		sum += ns
	}
	return sum
}

// fanoutClients is the child process holding the subscribers.
type fanoutClients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startFanoutClients starts a child process (this test binary, running
// TestFanoutClientsHelper) with n connections to addr offering offer, and
// returns once they are upgraded.
func startFanoutClients(b *testing.B, addr string, n int, offer string) *fanoutClients {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanoutClientsHelper$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("WSGATE_FANOUT_CLIENTS=%s|%d|%s", addr, n, offer))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	fc := &fanoutClients{cmd: cmd, in: in, out: bufio.NewReader(outp)}
	b.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	line, err := fc.out.ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("clients: %q %v", line, err)
	}
	return fc
}

// stop ends the child and returns the bytes its connections read.
func (fc *fanoutClients) stop(b *testing.B) int64 {
	fc.in.Close()
	line, err := fc.out.ReadString('\n')
	if err != nil {
		b.Fatalf("clients: %v", err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	return n
}

// TestFanoutClientsHelper is the child process of BenchmarkSharedFanout:
// it upgrades its connections, prints "ready", reads until its stdin is
// closed and prints the bytes read.
func TestFanoutClientsHelper(t *testing.T) {
	spec := os.Getenv("WSGATE_FANOUT_CLIENTS")
	if spec == "" {
		t.Skip("the child process of BenchmarkSharedFanout")
	}
	f := strings.SplitN(spec, "|", 3)
	addr, offer := f[0], f[2]
	n, _ := strconv.Atoi(f[1])
	req := upgradeRequest
	if offer != "" {
		req = strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+offer+"\r\n\r\n", 1)
	}
	var read atomic.Int64
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				_, _ = io.WriteString(c, req)
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						fmt.Fprintln(os.Stderr, "upgrade:", err)
						os.Exit(1)
					}
					if line == "\r\n" {
						break
					}
				}
				conns[i] = c
				go func() {
					buf := make([]byte, 4096)
					for {
						k, err := br.Read(buf)
						read.Add(int64(k))
						if err != nil {
							return
						}
					}
				}()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Println(read.Load())
	for _, c := range conns {
		c.Close()
	}
}

//go:build linux

package loop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/codec"
)

const admissionChildEnv = "WSGATE_ADMISSION_CHILD"

// The tests of this file set RLIMIT_NOFILE and read /proc: Linux only.

// TestAdmissionChild is the server of TestAdmissionUnderFDLimit, run in a
// process of its own: an echo server whose RLIMIT_NOFILE is 256 (or, in
// mode "noreuseport", without SO_REUSEPORT, 512 above the listen backlog). It prints
// its address, serves until its standard input closes, and reports if the
// engine stops before that.
func TestAdmissionChild(t *testing.T) {
	if os.Getenv(admissionChildEnv) == "" {
		t.Skip("run by TestAdmissionUnderFDLimit")
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	mode := os.Getenv(admissionChildEnv)
	o := Options{
		NumLoops: 2, MaxConns: 100, PingInterval: -1, IdleTimeout: -1,
		HandshakeTimeout: time.Minute,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	rl.Cur = 256
	if mode == "noreuseport" {
		rl.Cur = uint64(listenBacklog()) + 512
		o.NoReusePort, o.MaxConns = true, 0
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(echoLoopHandler{}, o)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ADDR", addr)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	err = s.Wait()
	fmt.Println("STOPPED", err)
	os.Exit(3)
}

// TestAdmissionUnderFDLimit: peers that open more sockets than the server
// has descriptors, and never finish their upgrade, must not stop the server
// (gnet stops the engine when accept fails with EMFILE). 50 clients upgrade
// and echo; then 300 partial upgrade requests arrive at a server limited to
// 256 descriptors. The server refuses what it has no room for, keeps
// echoing for the 50, and takes new upgrades once the partial ones are gone.
func TestAdmissionUnderFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a server process")
	}
	addr, exited := startAdmissionChild(t, "1")
	healthy := make([]net.Conn, 50)
	for i := range healthy {
		healthy[i] = admUpgrade(t, addr)
	}
	admEcho(t, healthy, "before")

	partial := make([]net.Conn, 0, 300)
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		partial = append(partial, c)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	}
	// The refused ones are closed at once, unanswered; the others wait.
	var refused atomic.Int64
	var wg sync.WaitGroup
	wait := time.Now().Add(time.Second)
	for _, c := range partial {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(wait)
			b, err := io.ReadAll(c)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
			case len(b) == 0:
				refused.Add(1)
			default:
				t.Errorf("partial request answered %q", b)
			}
		}()
	}
	wg.Wait()
	select {
	case last := <-exited:
		t.Fatalf("server exited under the flood: %s", last)
	default:
	}
	if refused.Load() < 100 {
		t.Fatalf("%d of 300 partial requests refused; the server holds at most 256 descriptors", refused.Load())
	}
	admEcho(t, healthy, "during")

	for _, c := range partial {
		c.Close()
	}
	// Their places come back: new clients upgrade again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := admTryUpgrade(addr)
		if err == nil {
			admEcho(t, []net.Conn{c}, "after")
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upgrade after the partial requests closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range healthy {
		c.Close()
	}
	select {
	case last := <-exited:
		t.Fatalf("server exited: %s", last)
	default:
	}
	t.Logf("%d of 300 partial requests refused", refused.Load())
}

// startAdmissionChild runs TestAdmissionChild in a process of its own
// (mode "noreuseport": without SO_REUSEPORT) and returns its address and a
// channel that gets its last output line if it exits.
func startAdmissionChild(t *testing.T, mode string) (addr string, exited chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdmissionChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), admissionChildEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan string, 1)
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	go func() {
		var last string
		for lines.Scan() {
			last = lines.Text()
		}
		_ = cmd.Wait()
		exited <- last
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	if addr == "" {
		t.Fatal("server process printed no address")
	}
	admissionChildPID = cmd.Process.Pid
	return addr, exited
}

var admissionChildPID int

// are refused at once, and upgraded ones do not count against it.
// TestHandshakeEndsBefore101: a client holding its 101 finds its
// connection out of the handshake count, so the connection it opens next
// is not refused by MaxHandshakes. The count used to drop just after the
// 101 was written (399 of 3,000 upgrades saw it still counted), which
// made TestMaxHandshakes fail in CI.
func TestHandshakeEndsBefore101(t *testing.T) {
	s, addr := startServer(t, echoLoopHandler{}, Options{PingInterval: -1, IdleTimeout: -1}, nil)
	counted := 0
	for range 1000 {
		c := admUpgrade(t, addr)
		if s.Stats().Handshakes != 0 {
			counted++
		}
		c.Close()
	}
	if counted > 0 {
		t.Errorf("%d of 1000 upgraded connections still counted as handshakes after their 101", counted)
	}
}

func TestMaxHandshakes(t *testing.T) {
	s, addr := startServer(t, echoLoopHandler{}, Options{MaxHandshakes: 2, MaxTCPConns: 4, PingInterval: -1, IdleTimeout: -1}, nil)
	up := admUpgrade(t, addr) // upgraded: holds a TCP place, not a handshake
	defer up.Close()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, "two handshakes", func() bool { return s.Stats().Handshakes == 2 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || isTimeout(err) {
		t.Fatalf("third handshake: read %q, %v; want it closed unanswered", b, err)
	}
	held[0].Close()
	waitFor(t, "a handshake place", func() bool { return s.Stats().Handshakes == 1 })
	up2 := admUpgrade(t, addr) // 3 TCP places of 4 now
	defer up2.Close()
	admEcho(t, []net.Conn{up, up2}, "echo")
	if st := s.Stats(); st.TCPConns != 3 || st.Refused != 1 {
		t.Fatalf("TCPConns %d Refused %d, want 3 and 1", st.TCPConns, st.Refused)
	}
}

// TestAdmissionBacklogBurst: without SO_REUSEPORT gnet's acceptor takes
// the whole listen backlog before any loop sees a connection, so the
// default MaxTCPConns must leave room for a full backlog. The server
// process (no SO_REUSEPORT, descriptors for the backlog and 512 more) is
// filled with upgraded connections until it refuses, then stopped while a
// backlog's worth of clients connect, then resumed: it must survive and
// serve afterwards.
func TestAdmissionBacklogBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a server process")
	}
	addr, exited := startAdmissionChild(t, "noreuseport")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(held) < 8000 {
		c, err := admTryUpgrade(addr)
		if err != nil {
			break // refused: every place is taken
		}
		held = append(held, c)
	}
	if err := syscall.Kill(admissionChildPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	burst := 0
	for range int(listenBacklog()) + 64 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break // the backlog is full
		}
		held = append(held, c)
		burst++
	}
	if err := syscall.Kill(admissionChildPID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	select {
	case last := <-exited:
		t.Fatalf("server exited after a burst of %d connections: %s", burst, last)
	default:
	}
	admEcho(t, held[:1], "after the burst")
	t.Logf("%d upgraded, then a burst of %d connections: survived", len(held)-burst, burst)
}

type sleepyHandler struct{ nopHandler }

func (sleepyHandler) OnMessage(c *Conn, op codec.OpCode, p []byte) {
	if string(p) == "sleep" {
		time.Sleep(300 * time.Millisecond) // holds the only loop
	}
	_ = c.WriteMessage(op, p)
}

// TestRefusedPeerResets: peers refused at accept that have already sent
// their request and reset must not leave gnet with a connection and no
// Conn (a write of a refusal failing in OnOpen did that, and their input
// then crashed the server).
func TestRefusedPeerResets(t *testing.T) {
	s, addr := startServer(t, sleepyHandler{}, Options{
		NumLoops: 1, MaxHandshakes: 1, PingInterval: -1, IdleTimeout: -1, HandshakeTimeout: time.Minute,
	}, nil)
	up := admUpgrade(t, addr)
	defer up.Close()
	hold, err := net.Dial("tcp", addr) // takes the one handshake place
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	waitFor(t, "the held handshake", func() bool { return s.Stats().Handshakes == 1 })
	// While the loop sleeps, refused peers queue their request and reset.
	mask := [4]byte{}
	if _, err := up.Write(append([]byte{0x81, 0x80 | 5}, append(mask[:], "sleep"...)...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		_, _ = c.Write([]byte(upgradeRequest))
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(up, make([]byte, 7)); err != nil { // the echo of "sleep"
		t.Fatalf("echo of sleep: %v", err)
	}
	admEcho(t, []net.Conn{up}, "after")
	waitFor(t, "refusals counted", func() bool { return s.Stats().Refused > 0 })
	if st := s.Stats(); st.TCPConns != 2 || st.Handshakes != 1 {
		t.Fatalf("TCPConns %d Handshakes %d, want 2 and 1", st.TCPConns, st.Handshakes)
	}
}

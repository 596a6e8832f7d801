//go:build !windows

package loop

import (
	"bufio"
	"bytes"
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
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/codec"
)

const admissionChildEnv = "WSGATE_ADMISSION_CHILD"

type echoLoopHandler struct{ nopHandler }

func (echoLoopHandler) OnMessage(c *Conn, op codec.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

// TestAdmissionChild is the server of TestAdmissionUnderFDLimit, run in a
// process of its own: an echo server whose RLIMIT_NOFILE is 256. It prints
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
	rl.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(echoLoopHandler{}, Options{
		NumLoops: 2, MaxConns: 100, PingInterval: -1, IdleTimeout: -1,
		HandshakeTimeout: time.Minute,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdmissionChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), admissionChildEnv+"=1")
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
	exited := make(chan string, 1)
	lines := bufio.NewScanner(stdout)
	var addr string
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
	// The refused ones are answered 503 and closed; the others wait.
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
			case bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) || err != nil:
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

func admTryUpgrade(addr string) (net.Conn, error) { return admTryUpgradeWith(addr, upgradeRequest) }

func admTryUpgradeWith(addr, req string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		c.Close()
		return nil, fmt.Errorf("upgrade answered %q: %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, errors.New("bytes after the 101 response")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func admUpgrade(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := admTryUpgrade(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// admEcho sends a masked text frame on each connection and expects it back.
func admEcho(t *testing.T, conns []net.Conn, when string) {
	t.Helper()
	for i, c := range conns {
		msg := fmt.Sprintf("%s %d", when, i)
		mask := [4]byte{1, 2, 3, 4}
		frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask[:]...)
		for j := range len(msg) {
			frame = append(frame, msg[j]^mask[j%4])
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(frame); err != nil {
			t.Fatalf("%s: connection %d: write: %v", when, i, err)
		}
		got := make([]byte, 2+len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("%s: connection %d: read: %v", when, i, err)
		}
		if got[0] != 0x81 || int(got[1]) != len(msg) || string(got[2:]) != msg {
			t.Fatalf("%s: connection %d: echo %q, want %q", when, i, got, msg)
		}
	}
}

// TestMaxHandshakes: connections in their handshake beyond MaxHandshakes
// are refused at once, and upgraded ones do not count against it.
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
	if b, _ := io.ReadAll(c); !bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) {
		t.Fatalf("third handshake answered %q, want 503", b)
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

package wsgate

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// maskedText frames p as one masked text frame.
func maskedText(p []byte) []byte {
	out := []byte{0x81}
	switch {
	case len(p) < 126:
		out = append(out, 0x80|byte(len(p)))
	default:
		out = append(out, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	mask := [4]byte{9, 8, 7, 6}
	out = append(out, mask[:]...)
	for i, b := range p {
		out = append(out, b^mask[i%4])
	}
	return out
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestGatewayMemoryPerClient connects N clients that each connect with a
// token and subscribe to one channel, and measures the heap growth per
// client against N clients that only upgrade, in the same run. The
// clients are raw sockets driven by system calls, so the client side adds
// nothing to the Go heap but the descriptor slice. The figures cover the
// engine's connection (gnet's and loop's), its subscription and the
// gateway's session.
//
// Measured with 4,000 clients (this test; the parts from a heap profile
// with MemProfileRate 1): upgraded only ~635 B (gnet ~390 B: its conn,
// descriptor map entry and remote address; loop.Conn 144 B; session
// 96 B); connect and one subscription add ~58 B (the user string, loop's
// connExt 32 B and topicRef 16 B, the topic's subscriber slot): ~693 B in
// all. Before the session kept its first subscription inline and loop's
// topics dropped their position maps, it was ~650 + ~135 = ~786 B.
func TestGatewayMemoryPerClient(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of sockets")
	}
	const N = 4000
	upgraded, _ := memoryPerClient(t, N, false)
	heap, rss := memoryPerClient(t, N, true)
	t.Logf("%d clients: upgraded only: heap %d B/client; connected and subscribed: heap %d B/client (+%d B), RSS %d B/client (session struct %d B)",
		N, upgraded, heap, heap-upgraded, rss, sessionSize)
	if d := heap - upgraded; d > 96 {
		t.Errorf("connect and one subscription add %d B of heap per client to an upgraded connection; want at most 96 B", d)
	}
	if heap > 768 {
		t.Errorf("heap per connected, subscribed client %d B > 768 B", heap)
	}
}

// Every client pays for a session: keep it in the 96-byte size class,
// with the first subscription inline.
func TestSessionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if sessionSize > 96 {
		t.Errorf("session is %d bytes; want at most 96", sessionSize)
	}
}

// memoryPerClient opens n clients (connected with a token and subscribed
// to one channel when subscribe is set, else only upgraded) and returns
// the heap and RSS growth per client.
func memoryPerClient(t *testing.T, N int, subscribe bool) (heap, rss int64) {
	n := startNode(t, gwConfig())
	host, port, _ := net.SplitHostPort(n.addr)
	p, _ := strconv.Atoi(port)
	sa := &syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], net.ParseIP(host).To4())
	upgrade := []byte("GET " + WebSocketPath + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	tok := token(t, jwt.MapClaims{"sub": "m"})
	cmds := maskedText([]byte(`{"id":1,"connect":{"token":"` + tok + `"}}` + "\n" + `{"id":2,"subscribe":{"channel":"mem"}}`))

	fds := make([]int, 0, N)
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		// Gone before the next measurement starts: what they free must
		// not be counted against it.
		waitUntil(t, "all closed", func() bool { return n.Server().Conns() == 0 })
	}()
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0 := rssBytes(t)

	buf := make([]byte, 4096)
	readUntil := func(fd int, want []byte) {
		var got []byte
		for !bytes.Contains(got, want) {
			k, err := syscall.Read(fd, buf)
			if err == syscall.EINTR {
				continue // the runtime's preemption signal
			}
			if err != nil || k <= 0 {
				t.Fatalf("read: %v (got %q)", err, got)
			}
			got = append(got, buf[:k]...)
		}
	}
	tv := syscall.NsecToTimeval(int64(10 * time.Second))
	for i := 0; i < N; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		connectRaw(t, fd, sa)
		writeRaw(t, fd, upgrade)
		readUntil(fd, []byte("\r\n\r\n"))
		if subscribe {
			writeRaw(t, fd, cmds)
			readUntil(fd, []byte(`"id":2`))
		}
	}
	if subscribe {
		waitUntil(t, "all subscribed", func() bool { return n.Server().Stats().Subscriptions == int64(N) })
	} else {
		waitUntil(t, "all upgraded", func() bool { return n.Server().Conns() == N })
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	rss1 := rssBytes(t)
	heap = (int64(after.HeapAlloc) - int64(before.HeapAlloc) - int64(N)*8) / int64(N)
	rss = (rss1 - rss0) / int64(N)
	return heap, rss
}

// connectRaw connects fd, retrying when a signal interrupts the call
// (the connection then goes on in the background).
func connectRaw(t *testing.T, fd int, sa syscall.Sockaddr) {
	for {
		switch err := syscall.Connect(fd, sa); err {
		case nil, syscall.EISCONN:
			return
		case syscall.EINTR, syscall.EALREADY:
			time.Sleep(time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
}

// writeRaw writes all of p to fd, retrying on interrupted calls.
func writeRaw(t *testing.T, fd int, p []byte) {
	for len(p) > 0 {
		k, err := syscall.Write(fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
}

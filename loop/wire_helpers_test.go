//go:build !windows

package loop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// withExtOffer returns the upgrade request req with the extension offer
// ext; an empty ext leaves req as it is.
func withExtOffer(req, ext string) string {
	if ext == "" {
		return req
	}
	return strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+ext+"\r\n\r\n", 1)
}

// dialSend connects to addr, sends the upgrade request req and returns
// the connection with a reader on it and a 5 s read deadline set; rcvbuf
// > 0 sets SO_RCVBUF before connecting (a small one makes a client that
// stops reading stall the server quickly). The connection closes with
// the test.
func dialSend(t testing.TB, addr, req string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// readFrame reads one frame from br: its parsed header, its payload and
// the size of the header on the wire.
func readFrame(br *bufio.Reader) (codec.Header, []byte, int, error) {
	var hb [codec.MaxHeaderSize]byte
	n := 2
	if _, err := io.ReadFull(br, hb[:2]); err != nil {
		return codec.Header{}, nil, 0, err
	}
	switch hb[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if _, err := io.ReadFull(br, hb[2:n]); err != nil {
		return codec.Header{}, nil, 0, err
	}
	h, _, err := codec.ParseHeader(hb[:n])
	if err != nil {
		return codec.Header{}, nil, 0, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return codec.Header{}, nil, 0, err
	}
	return h, p, n, nil
}

// readUpgradeHeader reads the header lines of an upgrade answer from br up
// to the blank line that ends them and returns the value of its
// Sec-WebSocket-Extensions line, ok telling whether there was one.
func readUpgradeHeader(t testing.TB, br *bufio.Reader) (ext string, ok bool) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if line == "\r\n" {
			return ext, ok
		}
		if k, v, found := strings.Cut(line, ":"); found && strings.EqualFold(k, "Sec-WebSocket-Extensions") {
			ext, ok = strings.TrimSpace(v), true
		}
	}
}

// afterClose reads what c sends after a close frame, for at most 10 s: an
// error unless it is nothing before the end.
func afterClose(c net.Conn, br *bufio.Reader) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(br)
	switch {
	case len(rest) > 0:
		return fmt.Errorf("%d bytes after the close frame (% x)", len(rest), rest[:min(len(rest), 16)])
	case err != nil:
		return fmt.Errorf("after the close frame: %v", err)
	}
	return nil
}

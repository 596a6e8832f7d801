//go:build !windows

package loop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// A raw WebSocket client over net.Conn, for the admission and budget tests.

type echoLoopHandler struct{ nopHandler }

func (echoLoopHandler) OnMessage(c *Conn, op codec.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

//go:build !windows

package loop

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// budgetFrameHeader is the masked header (zero key) of a binary frame of n
// payload bytes.
func budgetFrameHeader(n uint64) []byte {
	h := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, n)
	return append(h, 0, 0, 0, 0)
}

// readCloseCode reads frames from c until a close frame and returns its
// code.
func readCloseCode(c net.Conn) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [4]byte
		if _, err := io.ReadFull(c, h[:2]); err != nil {
			return 0, err
		}
		n := int(h[1] & 0x7F)
		if n == 126 {
			if _, err := io.ReadFull(c, h[2:4]); err != nil {
				return 0, err
			}
			n = int(binary.BigEndian.Uint16(h[2:4]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c, p); err != nil {
			return 0, err
		}
		if h[0]&0x0F == 0x8 {
			if len(p) < 2 {
				return 1005, nil
			}
			return int(binary.BigEndian.Uint16(p)), nil
		}
	}
}

func closeCodeOf(t *testing.T, c net.Conn) int {
	t.Helper()
	code, err := readCloseCode(c)
	if err != nil {
		t.Fatalf("no close frame: %v", err)
	}
	return code
}

// TestMessageBudget: messages being assembled hold at most MessageBudget
// across connections; a frame that finds no room fails its connection
// with 1013 before its payload is buffered, and the room comes back when a
// message completes.
func TestMessageBudget(t *testing.T) {
	const size = 256 << 10
	s, addr := startServer(t, echoLoopHandler{}, Options{
		MessageBudget: 2 * size, MaxMessageSize: size, PingInterval: -1, IdleTimeout: -1,
	}, nil)
	a, b, c := admUpgrade(t, addr), admUpgrade(t, addr), admUpgrade(t, addr)
	defer a.Close()
	defer b.Close()
	defer c.Close()
	half := make([]byte, size/2)
	for _, conn := range []net.Conn{a, b} {
		if _, err := conn.Write(append(budgetFrameHeader(size), half...)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two reservations", func() bool { return s.msgUsed.Load() == 2*size })
	if _, err := c.Write(budgetFrameHeader(size)); err != nil {
		t.Fatal(err)
	}
	if code := closeCodeOf(t, c); code != 1013 {
		t.Fatalf("third message: close %d, want 1013", code)
	}
	// a completes its message: its echo comes back and its room is free.
	if _, err := a.Write(half); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
	echo := make([]byte, 10+size)
	if _, err := io.ReadFull(a, echo); err != nil {
		t.Fatalf("echo of the completed message: %v", err)
	}
	waitFor(t, "room given back", func() bool { return s.msgUsed.Load() == size })
	d := admUpgrade(t, addr)
	defer d.Close()
	if _, err := d.Write(append(budgetFrameHeader(size), make([]byte, size)...)); err != nil {
		t.Fatal(err)
	}
	_ = d.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(d, echo); err != nil {
		t.Fatalf("a message once room is back: %v", err)
	}
	b.Close()
	waitFor(t, "a closed connection's room given back", func() bool { return s.msgUsed.Load() == 0 })
}

// TestMessageTimeout: input that stays incomplete (a message, or a frame
// header) fails the connection with 1008 after MessageTimeout, however
// often bytes trickle in; complete frames keep a connection open.
func TestMessageTimeout(t *testing.T) {
	_, addr := startServer(t, echoLoopHandler{}, Options{
		MessageTimeout: 500 * time.Millisecond, PingInterval: -1, IdleTimeout: time.Minute,
	}, nil)
	cases := map[string][]byte{
		"message": append(budgetFrameHeader(100<<10), make([]byte, 70<<10)...),
		"header":  {0x82},
	}
	for name, start := range cases {
		t.Run(name, func(t *testing.T) {
			c := admUpgrade(t, addr)
			defer c.Close()
			began := time.Now()
			if _, err := c.Write(start); err != nil {
				t.Fatal(err)
			}
			done := make(chan int, 1)
			go func() {
				code, err := readCloseCode(c)
				if err != nil {
					code = -1
				}
				done <- code
			}()
			trickle := time.NewTicker(100 * time.Millisecond)
			defer trickle.Stop()
			for {
				select {
				case code := <-done:
					if code != 1008 {
						t.Fatalf("close %d (-1: none), want 1008", code)
					}
					if d := time.Since(began); d < 500*time.Millisecond {
						t.Fatalf("closed after %v, before MessageTimeout", d)
					}
					return
				case <-trickle.C:
					if name == "message" {
						_, _ = c.Write([]byte{0})
					}
				}
			}
		})
	}
	// Whole frames arriving more slowly than MessageTimeout are fine.
	c := admUpgrade(t, addr)
	defer c.Close()
	for i := range 3 {
		time.Sleep(300 * time.Millisecond)
		admEcho(t, []net.Conn{c}, "slow"+string(rune('0'+i)))
	}
}

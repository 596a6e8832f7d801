//go:build !windows

package loop

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/wsgate/wsgate/deflate"
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

// deflateMessage compresses p as one permessage-deflate message without
// context takeover: a DEFLATE stream flushed and stripped of its 4-byte
// tail (RFC 7692 §7.2.1).
func deflateMessage(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(p)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// TestInflateRatio: a compressed message may inflate to at most
// InflateRatio times its size (past 4 KiB); a bomb within MaxMessageSize
// fails its connection with 1009 instead of costing a core, while ordinary
// compressed text is delivered.
func TestInflateRatio(t *testing.T) {
	_, addr := startServer(t, echoLoopHandler{}, Options{
		MaxMessageSize: 2 << 20, Deflate: &deflate.Config{}, PingInterval: -1, IdleTimeout: -1,
	}, nil)
	req := withDeflateOffer(upgradeRequest)

	var text []byte // 8 KiB of ticks: compresses a few times, like real JSON
	rnd := rand.New(rand.NewPCG(1, 2))
	for len(text) < 8<<10 {
		text = fmt.Appendf(text, `{"sym":"EURUSD","bid":%.5f,"ask":%.5f,"ts":%d}`, 1+rnd.Float64(), 1+rnd.Float64(), rnd.Int64())
	}
	ok, err := admTryUpgradeWith(addr, req)
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	z := deflateMessage(t, text)
	if len(text)/len(z) >= 64 {
		t.Fatalf("test text compresses %d×: pick text below the ratio", len(text)/len(z))
	}
	frame := append([]byte{0xC2, 0x80 | 126, byte(len(z) >> 8), byte(len(z)), 0, 0, 0, 0}, z...)
	if _, err := ok.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = ok.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(ok, h[:]); err != nil || h[0]&0x0F != 0x2 {
		t.Fatalf("compressed text: got frame %x (%v), want its echo", h, err)
	}

	bomb, err := admTryUpgradeWith(addr, req)
	if err != nil {
		t.Fatal(err)
	}
	defer bomb.Close()
	z = deflateMessage(t, make([]byte, 1<<20))
	frame = append([]byte{0xC2, 0x80 | 126, byte(len(z) >> 8), byte(len(z)), 0, 0, 0, 0}, z...)
	if _, err := bomb.Write(frame); err != nil {
		t.Fatal(err)
	}
	if code := closeCodeOf(t, bomb); code != 1009 {
		t.Fatalf("a %d-byte message inflating to 1 MiB: close %d, want 1009", len(z), code)
	}
}

// TestMessageTimeoutSteadyStream: MessageTimeout times each message, not
// a stream of them. Every write here ends inside a frame, so input is
// never complete at the end of a read, yet each message completes within
// milliseconds: the connection must stay open well past the timeout.
func TestMessageTimeoutSteadyStream(t *testing.T) {
	_, addr := startServer(t, nopHandler{}, Options{
		MessageTimeout: 300 * time.Millisecond, PingInterval: -1, IdleTimeout: time.Minute,
	}, nil)
	c := admUpgrade(t, addr)
	defer c.Close()
	frame := append([]byte{0x82, 0x80 | 100, 0, 0, 0, 0}, make([]byte, 100)...)
	closed := make(chan int, 1)
	go func() {
		code, err := readCloseCode(c)
		if err != nil {
			code = -1
		}
		closed <- code
	}()
	// Each write: the second half of one frame and the first half of the
	// next, every 5 ms, for 4× the timeout.
	half := len(frame) / 2
	if _, err := c.Write(frame[:half]); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(1200 * time.Millisecond); time.Now().Before(end); {
		if _, err := c.Write(append(frame[half:len(frame):len(frame)], frame[:half]...)); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case code := <-closed:
			t.Fatalf("closed with %d (-1: no close frame) though every message completed in ~5 ms", code)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

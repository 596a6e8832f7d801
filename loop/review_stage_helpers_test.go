//go:build !windows

package loop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// zClient is a WebSocket client that inflates permessage-deflate messages
// on its own (compress/flate, with the window the negotiated parameters
// give: the last 2^bits bytes of the compressed messages so far under
// server context takeover, none without it), so that a frame compressed
// against the wrong history, or out of order, fails to inflate.
type zClient struct {
	c        net.Conn
	br       *bufio.Reader
	deflate  bool // permessage-deflate negotiated
	takeover bool // server context takeover
	bits     int  // server window bits
	window   []byte
}

// zMsg is what zClient read: a data message, a ping or a close frame.
type zMsg struct {
	op   codec.OpCode
	p    []byte
	rsv1 bool
}

func (m zMsg) String() string {
	if m.op == codec.OpClose {
		code, _, _ := codec.ParseClose(m.p)
		return "close " + strconv.Itoa(int(code))
	}
	if m.op == codec.OpPing {
		return "ping " + string(m.p)
	}
	s := string(m.p)
	if i := strings.IndexByte(s, '|'); i >= 0 {
		s = s[:i]
	}
	return s
}

// dialZ upgrades a connection with the extension offer ext ("" for none)
// and records what the server agreed to.
func dialZ(t testing.TB, addr, ext string, rcvbuf int) *zClient {
	t.Helper()
	c, br := dialSend(t, addr, withExtOffer(upgradeRequest, ext), rcvbuf)
	z := &zClient{c: c, br: br, bits: 15}
	status, err := z.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade: %q %v", status, err)
	}
	val, ok := readUpgradeHeader(t, z.br)
	if ok {
		z.deflate, z.takeover = true, true
		for _, p := range strings.Split(val, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			switch k {
			case "server_no_context_takeover":
				z.takeover = false
			case "server_max_window_bits":
				if z.bits, err = strconv.Atoi(strings.Trim(v, `"`)); err != nil {
					t.Fatalf("bad answer %q", val)
				}
			}
		}
	}
	return z
}

// inflate decompresses one message's payload with the client's window.
func (z *zClient) inflate(p []byte) ([]byte, error) {
	var dict []byte
	if z.takeover {
		dict = z.window
	}
	// The sync-flush tail the sender stripped, then an empty final
	// stored block so that the reader ends cleanly.
	src := append(append(append([]byte(nil), p...), 0, 0, 0xff, 0xff), 1, 0, 0, 0xff, 0xff)
	r := flate.NewReaderDict(bytes.NewReader(src), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if z.takeover {
		z.window = append(z.window, out...)
		if max := 1 << z.bits; len(z.window) > max {
			z.window = append([]byte(nil), z.window[len(z.window)-max:]...)
		}
	}
	return out, nil
}

// next reads one message, a ping or a close frame, checking the framing
// on the way: RSV bits, continuation, masking.
func (z *zClient) next(timeout time.Duration) (zMsg, error) {
	z.c.SetReadDeadline(time.Now().Add(timeout))
	var m zMsg
	inMsg := false
	for {
		h, p, _, err := readFrame(z.br)
		if err != nil {
			return m, err
		}
		if h.Masked {
			return m, fmt.Errorf("masked server frame")
		}
		if h.OpCode.IsControl() {
			if h.Rsv != 0 || !h.Fin {
				return m, fmt.Errorf("control frame %v with rsv %x fin %v", h.OpCode, h.Rsv, h.Fin)
			}
			if h.OpCode == codec.OpPing || h.OpCode == codec.OpClose {
				return zMsg{op: h.OpCode, p: p}, nil
			}
			continue
		}
		switch {
		case h.OpCode == codec.OpContinuation && !inMsg:
			return m, fmt.Errorf("continuation outside a message")
		case h.OpCode != codec.OpContinuation && inMsg:
			return m, fmt.Errorf("new %v frame inside a message", h.OpCode)
		case h.OpCode == codec.OpContinuation && h.Rsv != 0:
			return m, fmt.Errorf("continuation with rsv %x", h.Rsv)
		case h.OpCode != codec.OpContinuation:
			if h.Rsv&^codec.Rsv1 != 0 || h.Rsv != 0 && !z.deflate {
				return m, fmt.Errorf("rsv %x on a %v frame (deflate %v)", h.Rsv, h.OpCode, z.deflate)
			}
			m.op, m.rsv1, inMsg = h.OpCode, h.Rsv != 0, true
		}
		m.p = append(m.p, p...)
		if h.Fin {
			if m.rsv1 {
				out, err := z.inflate(m.p)
				if err != nil {
					return m, fmt.Errorf("message does not inflate: %v", err)
				}
				m.p = out
			}
			return m, nil
		}
	}
}

// holdLoop blocks the event loop of ls until the returned func is called.
func holdLoop(t testing.TB, ls *loopState) (release func()) {
	t.Helper()
	rel := make(chan struct{})
	held := make(chan struct{})
	if err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		close(held)
		<-rel
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	<-held
	return func() { close(rel) }
}

func firstLoop(s *Server) *loopState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loops[0]
}

// stageMsg is a compressible test payload named id, of about size bytes:
// "id|" then text that is a function of id, so that a damaged or
// misplaced message shows.
func stageMsg(id string, size int) []byte {
	b := []byte(id + "|")
	for i := 0; len(b) < size; i++ {
		b = append(b, fmt.Sprintf("quote %s price %d; ", id, i%7)...)
	}
	return b[:max(size, len(id)+1)]
}

// assertStagedCleared checks, on every loop, that no drain left a staged
// message behind: loopState.staged is nil and no connection is marked.
func assertStagedCleared(t *testing.T, s *Server) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	onLoops(s, func(ls *loopState) {
		mu.Lock()
		defer mu.Unlock()
		if ls.staged != nil {
			bad = append(bad, "loopState.staged is set after the drain")
		}
		ls.wheel.each(func(c *Conn) {
			c.mu.Lock()
			if c.wflags&wStaged != 0 && c.wflags&wClosed == 0 {
				bad = append(bad, "an open connection is still marked wStaged")
			}
			c.mu.Unlock()
		})
	})
	for _, b := range bad {
		t.Error(b)
	}
}

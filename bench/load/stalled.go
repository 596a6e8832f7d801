package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Stalled subscribers (fanout): connections that upgrade like the others
// and then never read again, the client a slow-consumer policy is for.
// They are plain sockets outside the event loops (a socket nobody reads
// needs no goroutine) with a 4 KiB receive buffer, so the server's sends
// back up into its own buffers within a fraction of a second instead of
// filling megabytes of kernel memory on our side first.

// stallRcvBuf is the receive buffer of a stalled subscriber; the kernel
// doubles it.
const stallRcvBuf = 4 << 10

var errStallResponse = errors.New("stalled subscriber: handshake response larger than 16 KiB")

// stallAll opens the spec's stalled subscribers, one after another.
func (w *worker) stallAll(ctx context.Context) {
	var key [24]byte
	rnd := rng{x: uint64(time.Now().UnixNano()) | 1}
	for k := range w.spec.Stalled {
		if ctx.Err() != nil {
			return
		}
		newKey(&key, &rnd)
		nc, err := w.dialStalled(k, key[:], &rnd)
		if err != nil {
			w.hsFail(fmt.Errorf("stalled subscriber: %w", err))
			continue
		}
		w.stalled = append(w.stalled, nc)
		w.nStalled.Add(1)
	}
}

// dialStalled connects and upgrades one stalled subscriber; rnd gives the
// mask of the close frame it sends when the server declines deflate.
func (w *worker) dialStalled(k int, key []byte, rnd *rng) (net.Conn, error) {
	d := *w.dialers[k%len(w.dialers)]
	bind := d.Control
	d.Control = func(network, addr string, c syscall.RawConn) error {
		if bind != nil {
			if err := bind(network, addr, c); err != nil {
				return err
			}
		}
		// Before connect(), so that the window scale matches the buffer.
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, stallRcvBuf)
		})
	}
	nc, err := d.Dial("tcp", w.target.Addr)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(w.spec.HandshakeTimeout))
	if _, err := nc.Write(w.req.appendRequest(nil, key)); err != nil {
		return fail(err)
	}
	// Whatever arrives after the blank line is a frame: it is read with
	// the header or left unread, and neither matters here.
	buf := make([]byte, 0, 512)
	end := -1
	for end < 0 {
		if len(buf) == cap(buf) {
			if len(buf) >= maxResponse {
				return fail(errStallResponse)
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := nc.Read(buf[len(buf):cap(buf)])
		if err != nil {
			return fail(err)
		}
		buf = buf[:len(buf)+n]
		end = bytes.Index(buf, []byte("\r\n\r\n"))
	}
	resp := buf[:end+4]
	if _, err := parseResponse(resp, key, w.spec.Subprotocol, w.spec.Deflate, w.spec.Takeover); err != nil {
		if errors.Is(err, errRespNoDeflate) {
			_, _ = nc.Write(appendDeflateRequired(nil, rnd.mask()))
		}
		return fail(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}

// closeStalled drops the stalled subscribers (unread data makes that a
// reset, as when such a client finally goes away).
func (w *worker) closeStalled() {
	for _, nc := range w.stalled {
		nc.Close()
	}
	w.stalled = nil
	w.nStalled.Store(0)
}

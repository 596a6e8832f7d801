// Command gobwas-gnet is the peer server that puts github.com/gobwas/ws on
// github.com/panjf2000/gnet/v2, the way the gnet-examples websocket server
// does (gnet-io/gnet-examples websocket/server): gnet event loops, input
// accumulated per connection, ws.Upgrade once the request is complete,
// ws.ReadHeader and ws.Cipher for frames, ws.WriteFrame for replies through
// c.Write. It follows the contract in bench/peers/internal/peer.
//
// It is our own version of that approach with that example's flaws fixed:
//   - ws.Upgrade reads only the bytes up to the end of the request, so
//     frames that arrive with the request are not lost;
//   - frame and message sizes are checked against a limit (16 MiB) before
//     anything is buffered, the request against 8 KiB;
//   - gnet's input is drained on every OnTraffic and parsed where it sits;
//     only a partial frame or request is copied into the connection's own
//     buffer, which is dropped as soon as it empties;
//   - each reply is one c.Write (header and payload in one buffer);
//   - frames are checked with ws.CheckHeader (mask, RSV, control frame and
//     continuation rules), text with utf8.Valid, close frames with
//     ws.CheckCloseFrameData, and a close frame is answered.
//
// It has no timeouts, no backpressure and no permessage-deflate: -deflate
// exits with "deflate unsupported". -loops sets gnet's number of event loops
// (0: gnet's multicore default, one per CPU). -broadcast writes one shared
// frame to every connection with AsyncWrite, the usual gnet fan-out.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/bench/peers/internal/peer"
)

const (
	name       = "gobwas-gnet"
	maxRequest = 8 << 10  // largest upgrade request
	maxMessage = 16 << 20 // largest frame or reassembled message
)

func main() {
	cfg := peer.ParseFlags(name)
	if cfg.Deflate {
		peer.Logf(name, "deflate unsupported")
		os.Exit(2)
	}

	s := &server{broadcast: cfg.Broadcast, addr: cfg.Addr, conns: peer.NewConns[gnet.Conn](cfg.Broadcast)}
	peer.ServeAdmin(name, cfg.Admin, s.conns.Load)

	opts := []gnet.Option{gnet.WithReusePort(true)}
	if cfg.Loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(cfg.Loops))
	} else {
		opts = append(opts, gnet.WithMulticore(true))
	}
	failed := make(chan error, 1)
	go func() { failed <- gnet.Run(s, "tcp://"+cfg.Addr, opts...) }()
	peer.WaitSignal(name, failed)
}

type server struct {
	gnet.BuiltinEventEngine
	addr      string
	conns     *peer.Conns[gnet.Conn]
	broadcast bool
}

// connState is the per-connection context. Event-loop only.
type connState struct {
	state    ws.State  // StateServerSide, plus StateFragmented inside a message
	upgraded bool      //
	op       ws.OpCode // opcode of the fragmented message in progress
	in       []byte    // unconsumed input (partial request or frame); nil when empty
	msg      []byte    // fragments of the message in progress
}

// scratch is per-OnTraffic working memory, pooled so that it costs nothing
// per connection.
type scratch struct {
	rd  bytes.Reader
	hdr [ws.MaxHeaderSize - 2]byte // ws.ReadHeaderBuffer's buffer
	out bytes.Buffer
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *server) OnBoot(gnet.Engine) gnet.Action {
	peer.Logf(name, "listening on %s (broadcast=%v)", s.addr, s.broadcast)
	return gnet.None
}

func (s *server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&connState{state: ws.StateServerSide})
	return nil, gnet.None
}

func (s *server) OnClose(c gnet.Conn, _ error) gnet.Action {
	st, _ := c.Context().(*connState)
	if st != nil && st.upgraded {
		s.conns.Close(c)
	}
	return gnet.None
}

// errClose means "stop reading and close"; what to tell the peer, if
// anything, has already been written.
var errClose = errors.New("close")

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	st := c.Context().(*connState)
	data, _ := c.Next(-1) // valid until OnTraffic returns
	if len(st.in) > 0 {
		st.in = append(st.in, data...)
		data = st.in
	}

	sc := scratchPool.Get().(*scratch)
	n, err := s.consume(c, st, sc, data)
	if sc.out.Cap() > 64<<10 {
		sc.out = bytes.Buffer{}
	}
	scratchPool.Put(sc)
	if err != nil {
		st.in, st.msg = nil, nil
		return gnet.Close // gnet flushes what was written before closing
	}

	if n == len(data) {
		st.in = nil
	} else {
		// Keep the partial request or frame. When data is st.in the copy
		// moves bytes down within the same array, which append allows.
		st.in = append(st.in[:0], data[n:]...)
	}
	return gnet.None
}

// consume handles as much of data as forms a complete request or complete
// frames, and returns how many bytes it used.
func (s *server) consume(c gnet.Conn, st *connState, sc *scratch, data []byte) (int, error) {
	off := 0
	if !st.upgraded {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			if len(data) > maxRequest {
				return 0, errClose
			}
			return 0, nil
		}
		end += 4
		if end > maxRequest {
			return 0, errClose
		}
		// The reader holds the request and nothing more, so ws.Upgrade's
		// bufio.Reader cannot swallow frames that follow it. The response
		// (101 or an HTTP error) goes out in one c.Write from its Flush.
		sc.rd.Reset(data[:end])
		if _, err := ws.Upgrade(handshakeConn{Reader: &sc.rd, Writer: c}); err != nil {
			return end, errClose
		}
		st.upgraded = true
		s.conns.Open(c)
		off = end
	}

	for off < len(data) {
		p := data[off:]
		sc.rd.Reset(p)
		h, err := ws.ReadHeaderBuffer(&sc.rd, sc.hdr[:])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break // header incomplete
		}
		if err != nil {
			return off, s.fail(c, sc, ws.StatusProtocolError)
		}
		if err := ws.CheckHeader(h, st.state); err != nil {
			return off, s.fail(c, sc, ws.StatusProtocolError)
		}
		if h.Length > int64(maxMessage-len(st.msg)) {
			return off, s.fail(c, sc, ws.StatusMessageTooBig)
		}
		hsize := len(p) - sc.rd.Len()
		total := hsize + int(h.Length)
		if len(p) < total {
			break // payload incomplete; bounded by the check above
		}
		payload := p[hsize:total]
		ws.Cipher(payload, h.Mask, 0)
		off += total
		if err := s.frame(c, st, sc, h, payload); err != nil {
			return off, err
		}
	}
	return off, nil
}

// frame handles one complete, unmasked frame.
func (s *server) frame(c gnet.Conn, st *connState, sc *scratch, h ws.Header, p []byte) error {
	switch h.OpCode {
	case ws.OpPing:
		return s.write(c, sc, ws.OpPong, p)
	case ws.OpPong:
		return nil
	case ws.OpClose:
		return s.closeFrame(c, sc, p)
	case ws.OpContinuation:
		st.msg = append(st.msg, p...)
		if !h.Fin {
			return nil
		}
		err := s.message(c, sc, st.op, st.msg)
		st.msg = nil
		st.state = st.state.Clear(ws.StateFragmented)
		return err
	default: // text or binary, CheckHeader has ruled out the rest
		if !h.Fin {
			st.op = h.OpCode
			st.msg = append([]byte(nil), p...)
			st.state = st.state.Set(ws.StateFragmented)
			return nil
		}
		return s.message(c, sc, h.OpCode, p)
	}
}

// message echoes or broadcasts one complete message.
func (s *server) message(c gnet.Conn, sc *scratch, op ws.OpCode, p []byte) error {
	if op == ws.OpText {
		if !utf8.Valid(p) {
			return s.fail(c, sc, ws.StatusInvalidFramePayloadData)
		}
		if s.broadcast {
			if rest, ok := peer.BroadcastPayload(p); ok {
				s.fanOut(rest)
				return nil
			}
		}
	}
	return s.write(c, sc, op, p)
}

// fanOut builds one frame and hands it to every connection. AsyncWrite is
// the gnet call that is safe from any loop; the frame is shared and never
// modified.
func (s *server) fanOut(p []byte) {
	var b bytes.Buffer
	b.Grow(ws.MaxHeaderSize + len(p))
	_ = ws.WriteFrame(&b, ws.NewTextFrame(p))
	frame := b.Bytes()
	s.conns.Each(func(m gnet.Conn) { _ = m.AsyncWrite(frame, nil) })
}

// closeFrame answers a close frame: the same code if it is valid, 1002 if
// not, an empty close frame for an empty one. Then the connection closes.
func (s *server) closeFrame(c gnet.Conn, sc *scratch, p []byte) error {
	switch {
	case len(p) == 0:
		_ = s.write(c, sc, ws.OpClose, nil)
	case len(p) == 1:
		_ = s.fail(c, sc, ws.StatusProtocolError)
	default:
		code, reason := ws.ParseCloseFrameDataUnsafe(p)
		if ws.CheckCloseFrameData(code, reason) != nil {
			_ = s.fail(c, sc, ws.StatusProtocolError)
		} else {
			var body [2]byte
			binary.BigEndian.PutUint16(body[:], uint16(code))
			_ = s.write(c, sc, ws.OpClose, body[:])
		}
	}
	return errClose
}

// fail sends a close frame with code and returns errClose.
func (s *server) fail(c gnet.Conn, sc *scratch, code ws.StatusCode) error {
	var body [2]byte
	binary.BigEndian.PutUint16(body[:], uint16(code))
	_ = s.write(c, sc, ws.OpClose, body[:])
	return errClose
}

// write sends one unmasked frame with a single c.Write. gnet copies what
// the socket does not take, so the scratch buffer is free again on return.
func (s *server) write(c gnet.Conn, sc *scratch, op ws.OpCode, p []byte) error {
	sc.out.Reset()
	_ = ws.WriteFrame(&sc.out, ws.NewFrame(op, true, p))
	if _, err := c.Write(sc.out.Bytes()); err != nil {
		return errClose
	}
	return nil
}

// handshakeConn gives ws.Upgrade the request bytes to read and the gnet
// connection to write the response to.
type handshakeConn struct {
	io.Reader
	io.Writer
}

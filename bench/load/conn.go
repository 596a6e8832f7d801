package load

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// connState is where a client connection is in its life.
type connState uint8

const (
	stHandshake connState = iota // request sent, waiting for 101
	stOpen                       // upgraded
	stClosing                    // our close frame sent, waiting for the server's
	stClosed                     // OnClose ran
)

// Verification failures of one message.
var (
	errLength  = errors.New("verify: wrong message length")
	errBytes   = errors.New("verify: payload bytes differ from what was sent")
	errOpcode  = errors.New("verify: wrong opcode")
	errSeq     = errors.New("verify: sequence out of order or repeated")
	errInflate = errors.New("verify: cannot inflate compressed message")
	errZLarge  = errors.New("verify: compressed message larger than the limit")
	errWindow  = errors.New("deflate: a compressed message was not inflated, so the context-takeover window is lost")
)

// wsConn is the client side of one WebSocket connection. Everything but
// its creation happens on its event loop.
type wsConn struct {
	c         gnet.Conn
	w         *worker
	ls        *loopState
	idx       int32 // position in ls.conns; -1 when not listed
	state     connState
	deflate   bool // permessage-deflate negotiated
	takeover  bool // with server context takeover: inflate with win
	publisher bool // the fanout publisher
	wantClose bool // close after this OnTraffic
	inMsg     bool
	msgZ      bool // the message in progress is compressed
	msgOp     codec.OpCode
	msgOff    int   // bytes of the message seen so far
	msgWire   int   // payload bytes of the message as it came (compressed or not)
	msgErr    error // first verification failure of the message in progress
	hsStart   int64 // unix ns when dialling started
	closeAt   int64 // unix ns when our close frame was sent
	nextSend  uint32
	nextRecv  uint32
	lastSeq   uint32
	key       [24]byte
	head      [MinSize]byte
	resp      []byte // a handshake response split over reads
	z         []byte // the compressed message in progress (gateway: any message)
	rd        frameReader
	// With server context takeover, win ends with the last winMax bytes
	// this connection inflated (fewer at first), the window the next
	// compressed message refers to (RFC 7692 §7.2.2). Its capacity is
	// winMax plus room for one message (see room).
	win    []byte
	winMax int
	exp    []byte // the filler text the message in progress is checked against
	// gateway scenario
	subscribed bool   // the subscribe reply came
	lastOff    uint64 // the channel offset of the last publication received
}

// loopState is what one gnet event loop of a worker owns: scratch buffers,
// templates, the inflater and the histograms. Only that loop touches it
// (except conns, appended in OnOpen, which also runs on the loop).
type loopState struct {
	w         *worker
	el        gnet.EventLoop
	conns     []*wsConn
	out       []byte
	plain     []byte // this loop's copy of the message template
	zplain    []byte // and of its compressed form
	pub       []byte // publisher template ("BCAST " + message)
	rnd       rng
	now       int64 // unix ns, read once per callback
	measuring bool
	lat       Histogram // round trip (echo) or publish-to-receive (fanout)
	hs        Histogram // dial start to verified 101
	zr        bytes.Reader
	fr        io.ReadCloser
	zw        *flate.Writer // the fanout publisher's compressor
	zbuf      bytes.Buffer
	inflated  []byte
	data      []byte // gateway: the expected publication data
}

// handler is the worker's gnet.EventHandler.
type handler struct {
	gnet.BuiltinEventEngine
	w *worker
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	ws, ok := c.Context().(*wsConn)
	if !ok {
		return nil, gnet.Close
	}
	ls := h.w.loopFor(c.EventLoop())
	ws.c, ws.ls = c, ls
	ws.idx = int32(len(ls.conns))
	ls.conns = append(ls.conns, ws)
	h.w.live.Add(1)
	newKey(&ws.key, &ls.rnd)
	ls.out = h.w.req.appendRequest(ls.out[:0], ws.key[:])
	return ls.out, gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	ws, ok := c.Context().(*wsConn)
	if !ok || ws.ls == nil {
		return gnet.None
	}
	w := h.w
	ws.unlist()
	switch ws.state {
	case stHandshake:
		if !w.closing.Load() {
			w.hsFail(fmt.Errorf("handshake: connection closed before 101: %v", errString(err)))
		}
	case stOpen:
		if !w.closing.Load() && w.spec.Scenario != ScenarioStorm {
			w.count.Dropped.Add(1)
			w.sample(fmt.Errorf("connection closed by the server or the network without a close frame: %v", errString(err)))
		}
	}
	if w.closing.Load() && (ws.state == stOpen || ws.state == stClosing) {
		// The run is over and this connection has ended: what never came
		// is lost. (Counted here, not when our close frame went out, so
		// that a server that is only behind delivers its backlog first.)
		ws.tailLoss()
	}
	ws.setClosed()
	ws.z, ws.resp, ws.win = nil, nil, nil
	if w.spec.Scenario == ScenarioStorm {
		w.releaseToken()
	}
	return gnet.None
}

func errString(err error) string {
	if err == nil {
		return "EOF"
	}
	return err.Error()
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	ws, ok := c.Context().(*wsConn)
	if !ok || ws.ls == nil {
		return gnet.Close
	}
	ls := ws.ls
	ls.now = time.Now().UnixNano()
	ls.measuring = h.w.measuring.Load()
	ls.out = ls.out[:0]
	buf, _ := c.Next(-1)
	if ws.state == stHandshake {
		rest, done, err := ws.handshake(buf)
		if err != nil {
			h.w.hsFail(err)
			if len(ls.out) > 0 {
				_, _ = c.Write(ls.out) // the 1010 close frame
			}
			return ws.closeNow()
		}
		if !done {
			return gnet.None
		}
		buf = rest
	}
	if len(buf) > 0 && ws.state != stClosed {
		if err := ws.rd.feed(buf, ws); err != nil {
			ws.fail(err)
		}
	}
	if len(ls.out) > 0 {
		_, _ = c.Write(ls.out)
	}
	if ws.wantClose {
		return gnet.Close
	}
	return gnet.None
}

// unlist removes ws from its loop's list (swapping in the last one) and
// from the live count.
func (ws *wsConn) unlist() {
	ls := ws.ls
	if i := ws.idx; i >= 0 && int(i) < len(ls.conns) && ls.conns[i] == ws {
		last := ls.conns[len(ls.conns)-1]
		ls.conns[i] = last
		last.idx = i
		ls.conns[len(ls.conns)-1] = nil
		ls.conns = ls.conns[:len(ls.conns)-1]
	}
	ws.idx = -1
	ws.w.live.Add(-1)
}

// closeNow closes a connection that failed its handshake.
func (ws *wsConn) closeNow() gnet.Action {
	ws.unlist()
	ws.ls = nil // OnClose ignores it
	if ws.w.spec.Scenario == ScenarioStorm {
		ws.w.releaseToken()
	}
	return gnet.Close
}

// handshake consumes the response to the upgrade request. It returns the
// bytes after the response header (frames), and done once the response
// was complete and correct.
func (ws *wsConn) handshake(buf []byte) (rest []byte, done bool, err error) {
	var resp []byte
	if ws.resp == nil {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			resp, rest = buf[:i+4], buf[i+4:]
		}
	}
	if resp == nil {
		from := max(len(ws.resp)-3, 0)
		ws.resp = append(ws.resp, buf...)
		i := bytes.Index(ws.resp[from:], []byte("\r\n\r\n"))
		if i < 0 {
			if len(ws.resp) > maxResponse {
				return nil, false, errRespTooLarge
			}
			return nil, false, nil
		}
		i += from
		resp, rest = ws.resp[:i+4], ws.resp[i+4:]
	}
	w := ws.w
	res, err := parseResponse(resp, ws.key[:], w.spec.Subprotocol, w.spec.Deflate, w.spec.Takeover)
	if err != nil {
		if st := statusLine(resp); st != "" && errors.Is(err, errRespStatus) {
			err = fmt.Errorf("%w: %q", err, st)
		}
		if errors.Is(err, errRespNoDeflate) {
			// The handshake itself succeeded: the connection is open and
			// is ended with a close frame, then closed at once (a load
			// generator has no use for it, nor for the server's reply).
			ws.ls.out = appendDeflateRequired(ws.ls.out, ws.ls.rnd.mask())
		}
		return nil, false, err
	}
	ws.deflate = res.deflate
	if res.deflate && res.takeover {
		ws.takeover, ws.winMax = true, 1<<res.windowBits
		w.count.Takeover.Add(1)
	}
	var rsv byte
	if res.deflate {
		rsv = codec.Rsv1
	}
	limit := int64(w.spec.Size)*2 + 4096
	if w.spec.Scenario == ScenarioGateway {
		limit = 1 << 20 // servers put several pushes in one frame
	}
	ws.rd.reset(rsv, limit)
	ws.state = stOpen
	ws.nextSend, ws.nextRecv = 1, 1
	ls := ws.ls
	if ls.measuring || w.spec.Scenario != ScenarioStorm {
		ls.hs.Record(ls.now - ws.hsStart)
	}
	w.count.Handshakes.Add(1)
	w.open.Add(1)
	w.markHandshake(ls.now)
	if ls.measuring {
		w.count.WinHandshakes.Add(1)
	}
	if ws.publisher {
		w.pubConn.Store(ws)
	}
	if w.spec.Scenario == ScenarioStorm || w.closing.Load() {
		ws.sendClose(codec.StatusNormalClosure)
	} else if w.spec.Scenario == ScenarioGateway {
		ls.out = codec.AppendFrame(ls.out, codec.Header{Fin: true, OpCode: codec.OpText, Masked: true, Mask: ls.rnd.mask()}, w.hello)
	}
	ws.resp = nil // rest may alias it; the caller feeds rest at once
	return rest, true, nil
}

// statusLine returns the first line of a response, cut to 80 bytes.
func statusLine(resp []byte) string {
	line, _, _ := bytes.Cut(resp, []byte("\r\n"))
	if len(line) > 80 {
		line = line[:80]
	}
	return string(line)
}

// fail handles a protocol error: count it, send a close frame with its
// code and close.
func (ws *wsConn) fail(err error) {
	w := ws.w
	w.count.Protocol.Add(1)
	w.sample(err)
	code := codec.StatusProtocolError
	if c, ok := codec.CloseStatus(err); ok {
		code = c
	}
	if ws.state == stOpen {
		ws.appendClose(code)
	}
	ws.setClosed()
	ws.wantClose = true
}

// setClosed moves ws to stClosed and keeps the open gauge right.
func (ws *wsConn) setClosed() {
	if ws.state == stOpen || ws.state == stClosing {
		ws.w.open.Add(-1)
	}
	ws.state = stClosed
}

// appendClose appends a close frame to the loop's output.
func (ws *wsConn) appendClose(code codec.StatusCode) {
	ls := ws.ls
	var p [2]byte
	payload := codec.AppendClose(p[:0], code, "")
	ls.out = codec.AppendFrame(ls.out, codec.Header{Fin: true, OpCode: codec.OpClose, Masked: true, Mask: ls.rnd.mask()}, payload)
}

// sendClose starts the closing handshake; the loop's output is written
// by the caller (OnTraffic) or here when called outside OnTraffic.
func (ws *wsConn) sendClose(code codec.StatusCode) {
	if ws.state != stOpen {
		return
	}
	ws.appendClose(code)
	ws.state = stClosing
	ws.closeAt = ws.ls.now
}

// appendMessage appends the next data message of ws to the loop's output.
func (ws *wsConn) appendMessage() {
	ls := ws.ls
	w := ws.w
	seq := ws.nextSend
	ws.nextSend++
	ts := ls.now - w.spec.Epoch
	h := codec.Header{Fin: true, OpCode: w.op, Masked: true, Mask: ls.rnd.mask()}
	var payload []byte
	if ws.deflate {
		putMsgHeader(ls.zplain[w.tmpl.zHead:], seq, ts, w.spec.Size)
		payload = ls.zplain
		h.Rsv = codec.Rsv1
	} else {
		putMsgHeader(ls.plain, seq, ts, w.spec.Size)
		payload = ls.plain
	}
	ls.out = codec.AppendFrame(ls.out, h, payload)
	w.count.Sent.Add(1)
}

// appendPublish appends the publisher's next "BCAST " message.
func (ws *wsConn) appendPublish(seq uint32) {
	ls := ws.ls
	w := ws.w
	ts := ls.now - w.spec.Epoch
	h := codec.Header{Fin: true, OpCode: codec.OpText, Masked: true, Mask: ls.rnd.mask()}
	putMsgHeader(ls.pub[len(bcastPrefix):], seq, ts, w.spec.Size)
	o := tickOffset(seq, w.spec.Size)
	copy(ls.pub[len(bcastPrefix)+MinSize:], w.fill[o+MinSize:o+w.spec.Size])
	payload := ls.pub
	if ws.deflate {
		// The ticks differ from message to message: each is compressed
		// on its own (client_no_context_takeover), a few per second.
		z, err := ls.compress(ls.pub)
		if err != nil {
			ws.fail(err)
			return
		}
		payload = z
		h.Rsv = codec.Rsv1
	}
	ls.out = codec.AppendFrame(ls.out, h, payload)
	w.count.Sent.Add(1)
}

// The frameSink methods verify messages as their bytes arrive.

func (ws *wsConn) messageStart(op codec.OpCode, compressed bool) {
	ws.inMsg, ws.msgOp, ws.msgZ, ws.msgOff, ws.msgErr = true, op, compressed, 0, nil
	ws.exp = ws.w.fill
	if compressed || ws.w.spec.Scenario == ScenarioGateway {
		ws.z = ws.z[:0]
	}
}

func (ws *wsConn) messageData(p []byte) {
	if ws.w.spec.Scenario == ScenarioGateway {
		ws.z = append(ws.z, p...)
		return
	}
	if ws.msgZ {
		if len(ws.z)+len(p) > 2*ws.w.spec.Size+4096 {
			if ws.msgErr == nil {
				ws.msgErr = errZLarge
			}
			return
		}
		ws.z = append(ws.z, p...)
		return
	}
	ws.check(p)
}

// check verifies the next piece p of the message's (uncompressed) bytes.
func (ws *wsConn) check(p []byte) {
	off := ws.msgOff
	ws.msgOff += len(p)
	size := ws.w.spec.Size
	if ws.msgErr != nil {
		return
	}
	if off < MinSize {
		n := copy(ws.head[off:], p)
		off += n
		p = p[n:]
		if off == MinSize && ws.w.ticks {
			seq, ok := getHex(ws.head[:seqEnd])
			if !ok {
				ws.msgErr = errMsgHeader
				return
			}
			ws.exp = ws.w.fill[tickOffset(uint32(seq), size):]
		}
	}
	if len(p) == 0 {
		return
	}
	if off+len(p) > size {
		ws.msgErr = errLength
		return
	}
	if !bytes.Equal(p, ws.exp[off:off+len(p)]) {
		ws.msgErr = errBytes
	}
}

func (ws *wsConn) messageEnd() {
	ws.inMsg = false
	w := ws.w
	if w.spec.Scenario == ScenarioGateway {
		if ws.msgOp != codec.OpText || ws.msgZ {
			w.count.BadPayload.Add(1)
			w.sample(fmt.Errorf("%w: opcode %v, compressed %v", errOpcode, ws.msgOp, ws.msgZ))
		} else {
			ws.gatewayMessage(ws.z)
		}
		if cap(ws.z) > 64<<10 {
			ws.z = nil
		}
		return
	}
	ws.msgWire = ws.msgOff
	if ws.msgZ {
		ws.msgWire = len(ws.z)
	}
	// With takeover, a compressed message that is not inflated leaves the
	// window unknown: the connection cannot read the next one.
	windowLost := ws.msgZ && ws.takeover
	if ws.msgZ && ws.msgErr == nil {
		out, err := ws.inflate(w.spec.Size)
		if err != nil {
			ws.msgErr = errInflate
		} else {
			windowLost = false
			ws.msgOff = 0
			ws.check(out)
		}
	}
	if cap(ws.z) > 64<<10 {
		ws.z = nil // do not keep a large buffer per connection
	}
	err := ws.msgErr
	if err == nil && ws.msgOff != w.spec.Size {
		err = errLength
	}
	want := w.op
	if w.spec.Scenario == ScenarioFanout {
		want = codec.OpText
	}
	if err == nil && ws.msgOp != want {
		err = errOpcode
	}
	// The sequence number is read even from a bad message, when its header
	// arrived whole, so that one bad message is not also counted as a
	// sequence error for every message after it.
	seq, ts, sz16, herr := uint32(0), int64(0), 0, errMsgHeader
	if ws.msgOff >= MinSize && (!ws.msgZ || ws.msgErr != errInflate) {
		seq, ts, sz16, herr = parseMsgHeader(ws.head[:])
	}
	if err == nil {
		err = herr
	}
	if err == nil && sz16 != w.spec.Size&0xffff {
		err = errLength
	}
	if err != nil {
		w.count.BadPayload.Add(1)
		w.sample(err)
		if windowLost {
			ws.fail(errWindow)
			return
		}
		if herr == nil {
			switch {
			case w.spec.Scenario == ScenarioEcho && seq == ws.nextRecv:
				ws.nextRecv++
				if w.running.Load() && ws.state == stOpen {
					ws.appendMessage() // keep the window full
				}
			case w.spec.Scenario == ScenarioFanout && seq > ws.lastSeq:
				ws.lastSeq = seq
			}
		}
		return
	}
	switch w.spec.Scenario {
	case ScenarioEcho:
		if seq != ws.nextRecv {
			w.count.BadOrder.Add(1)
			w.sample(fmt.Errorf("%w: got %d, want %d", errSeq, seq, ws.nextRecv))
			ws.nextRecv = seq + 1
			return
		}
		ws.nextRecv++
		ws.accept(ts)
		if w.running.Load() && ws.state == stOpen {
			ws.appendMessage()
		}
	case ScenarioFanout:
		if seq <= ws.lastSeq {
			w.count.BadOrder.Add(1)
			w.sample(fmt.Errorf("%w: got %d after %d", errSeq, seq, ws.lastSeq))
			return
		}
		if gap := seq - ws.lastSeq - 1; gap > 0 {
			w.count.Lost.Add(int64(gap))
			w.sample(fmt.Errorf("fanout: %d broadcast(s) never arrived before #%d", gap, seq))
		}
		ws.lastSeq = seq
		if !ws.publisher {
			ws.accept(ts)
		}
	default:
		// idle and storm send nothing; an echo of nothing is unexpected
		w.count.BadPayload.Add(1)
		w.sample(errors.New("verify: unexpected data message"))
	}
}

// tailLoss counts, when the run is over and the connection has ended, the
// messages that never arrived: echoes still outstanding, broadcasts after
// the last one received.
func (ws *wsConn) tailLoss() {
	w := ws.w
	var n uint32
	switch w.spec.Scenario {
	case ScenarioEcho:
		n = ws.nextSend - ws.nextRecv
		if n > 0 {
			w.sample(fmt.Errorf("echo: %d message(s) never came back", n))
		}
	case ScenarioGateway:
		if !ws.subscribed || uint64(w.lastPub) <= ws.lastOff {
			return
		}
		n = uint32(uint64(w.lastPub) - ws.lastOff)
		w.sample(fmt.Errorf("gateway: a subscriber missed the last %d publications (offsets up to %d)", n, w.lastPub))
	case ScenarioFanout:
		if ws.publisher || w.lastPub <= ws.lastSeq {
			return
		}
		n = w.lastPub - ws.lastSeq
		w.sample(fmt.Errorf("fanout: a subscriber missed the last %d of %d broadcasts", n, w.lastPub))
	}
	w.count.Lost.Add(int64(n))
}

// accept counts one complete, correct message with send time ts.
func (ws *wsConn) accept(ts int64) {
	ls := ws.ls
	w := ws.w
	w.count.Recv.Add(1)
	if ws.msgZ {
		w.count.Compressed.Add(1)
	}
	if !ls.measuring {
		return
	}
	w.count.WinRecv.Add(1)
	w.count.WinBytes.Add(int64(w.spec.Size))
	w.count.WinWire.Add(int64(ws.msgWire))
	lat := (ls.now - w.spec.Epoch - ts) & (1<<48 - 1) // ts has 48 bits
	if lat > 1<<47 {
		lat = 0 // clock went backwards
	}
	ls.lat.Record(lat)
}

func (ws *wsConn) control(op codec.OpCode, p []byte) {
	ls := ws.ls
	switch op {
	case codec.OpPing:
		if ws.state == stOpen || ws.state == stClosing {
			ls.out = codec.AppendFrame(ls.out, codec.Header{Fin: true, OpCode: codec.OpPong, Masked: true, Mask: ls.rnd.mask()}, p)
		}
	case codec.OpPong:
	case codec.OpClose:
		code, reason, err := codec.ParseClose(p)
		if err != nil {
			ws.fail(err)
			return
		}
		w := ws.w
		if ws.state == stOpen {
			// The server started the close.
			if !w.closing.Load() && w.spec.Scenario != ScenarioStorm {
				w.count.Protocol.Add(1)
				w.sample(fmt.Errorf("server closed the connection: %d %q", code, reason))
			}
			ws.appendClose(code)
			ws.state = stClosing
		}
		ws.wantClose = true
	}
}

// inflate decompresses the message in ws.z, up to limit+1 bytes: into the
// loop's buffer without takeover; with it, into ws.win with the window as
// dictionary, so that the message joins the window.
func (ws *wsConn) inflate(limit int) ([]byte, error) {
	ls := ws.ls
	if !ws.takeover {
		out, err := ls.inflate(ls.inflated[:0], ws.z, nil, limit)
		ls.inflated = out[:0]
		return out, err
	}
	ws.room(limit + 1)
	start := len(ws.win)
	out, err := ls.inflate(ws.win, ws.z, ws.win[max(start-ws.winMax, 0):], limit)
	ws.win = out
	if err != nil {
		return nil, err
	}
	return out[start:], nil
}

// room makes space for n more bytes after the window in ws.win, keeping
// its last winMax bytes. The window is allocated on the first compressed
// message: winMax + max(winMax/4, n) bytes (40 KiB for a 32 KiB window
// and small messages), moved to its start every winMax/4 bytes or so.
func (ws *wsConn) room(n int) {
	if cap(ws.win)-len(ws.win) >= n {
		return
	}
	keep := ws.win[max(len(ws.win)-ws.winMax, 0):]
	if need := ws.winMax + max(ws.winMax/4, n); cap(ws.win) < need {
		win := make([]byte, len(keep), need)
		copy(win, keep)
		ws.win = win
		return
	}
	ws.win = ws.win[:copy(ws.win[:cap(ws.win)], keep)]
}

// inflate decompresses one permessage-deflate message z, with dict as its
// preset dictionary (the window; nil for none), appending at most limit+1
// bytes to dst. On error the returned slice is still dst extended by what
// was inflated.
func (ls *loopState) inflate(dst, z, dict []byte, limit int) ([]byte, error) {
	z = append(z, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff) // sync tail + final empty block
	ls.zr.Reset(z)
	if ls.fr == nil {
		ls.fr = flate.NewReaderDict(&ls.zr, dict)
	} else if err := ls.fr.(flate.Resetter).Reset(&ls.zr, dict); err != nil {
		return dst, err
	}
	start := len(dst)
	out := dst
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := ls.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out)-start > limit {
			return out, errLength
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// compress returns p as the payload of one compressed message without
// context: DEFLATE with its sync-flush tail 00 00 ff ff removed (RFC 7692
// §7.2.1). The result is valid until the next call.
func (ls *loopState) compress(p []byte) ([]byte, error) {
	ls.zbuf.Reset()
	if ls.zw == nil {
		zw, err := flate.NewWriter(&ls.zbuf, flate.BestSpeed)
		if err != nil {
			return nil, err
		}
		ls.zw = zw
	} else {
		ls.zw.Reset(&ls.zbuf)
	}
	if _, err := ls.zw.Write(p); err != nil {
		return nil, err
	}
	if err := ls.zw.Flush(); err != nil {
		return nil, err
	}
	z := ls.zbuf.Bytes()
	if !bytes.HasSuffix(z, []byte{0, 0, 0xff, 0xff}) {
		return nil, errors.New("load: flate sync flush did not end in 00 00 ff ff")
	}
	return z[:len(z)-4], nil
}

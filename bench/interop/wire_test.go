package interop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wire-level helpers for the permessage-deflate tests: a frame parser, a
// raw WebSocket client, a frame-recording TCP proxy (sniffer) that sits
// between a real client and the server, and an RFC 7692 inflater.
//
// They are written from RFC 6455 and RFC 7692 and use the standard
// library's compress/flate, not wsgate's codec or deflate packages nor
// klauspost/compress, so that what they report about the server does not
// rest on the code under test.

// Opcodes (RFC 6455 §5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// RSV bits in the first header byte.
const (
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

// wireFrame is one frame as it went over the wire; payload is unmasked.
type wireFrame struct {
	fin     bool
	rsv     byte // rsv1|rsv2|rsv3 bits as in the first header byte
	op      byte
	masked  bool
	length  int // payload length announced by the header
	payload []byte
}

func (f wireFrame) String() string {
	return fmt.Sprintf("{fin:%v rsv:%#02x op:%d masked:%v len:%d}", f.fin, f.rsv, f.op, f.masked, f.length)
}

// parseFrame parses one frame from p. ok is false when p holds less than a
// whole frame. The payload is copied and unmasked.
func parseFrame(p []byte) (f wireFrame, n int, ok bool) {
	if len(p) < 2 {
		return f, 0, false
	}
	f.fin = p[0]&0x80 != 0
	f.rsv = p[0] & (rsv1 | rsv2 | rsv3)
	f.op = p[0] & 0x0f
	f.masked = p[1]&0x80 != 0
	n = 2
	length := uint64(p[1] & 0x7f)
	switch length {
	case 126:
		if len(p) < n+2 {
			return f, 0, false
		}
		length = uint64(binary.BigEndian.Uint16(p[n:]))
		n += 2
	case 127:
		if len(p) < n+8 {
			return f, 0, false
		}
		length = binary.BigEndian.Uint64(p[n:])
		n += 8
	}
	var key [4]byte
	if f.masked {
		if len(p) < n+4 {
			return f, 0, false
		}
		copy(key[:], p[n:])
		n += 4
	}
	if uint64(len(p)-n) < length {
		return f, 0, false
	}
	f.length = int(length)
	f.payload = append([]byte(nil), p[n:n+f.length]...)
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, n + f.length, true
}

// appendClientFrame appends a masked client frame. rsv holds rsv1/rsv2/rsv3
// bits.
func appendClientFrame(dst []byte, fin bool, rsv, op byte, payload []byte) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	dst = append(dst, b0)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	key := [4]byte{byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i&3])
	}
	return dst
}

// deflateTail is the sync-flush marker RFC 7692 §7.2.2 has the receiver
// append, followed by an empty final stored block so that the standard
// reader ends without io.ErrUnexpectedEOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflate decompresses the payload of a compressed message (RFC 7692
// §7.2.2) with dict as the LZ77 window of earlier messages (nil without
// context takeover). A back-reference further than dict plus the output so
// far is an error, so passing only the last 2^bits bytes of history checks
// that the sender kept within its window (for references into history).
func inflate(payload, dict []byte) ([]byte, error) {
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateTail)), dict)
	defer r.Close()
	return io.ReadAll(r)
}

// compressMsg compresses msg as one permessage-deflate message: DEFLATE
// blocks ending in a sync flush whose 00 00 ff ff tail is removed
// (RFC 7692 §7.2.1), at the given flate level, with dict as context.
func compressMsg(tb testing.TB, msg, dict []byte, level int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriterDict(&buf, level, dict)
	if err != nil {
		tb.Fatalf("flate.NewWriterDict: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		tb.Fatalf("flate write: %v", err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatalf("flate flush: %v", err)
	}
	out := buf.Bytes()
	if !bytes.HasSuffix(out, deflateTail[:4]) {
		tb.Fatalf("flate output does not end with 00 00 ff ff: % x", out[max(0, len(out)-8):])
	}
	return out[:len(out)-4]
}

// wireMsg is one data message assembled from its frames.
type wireMsg struct {
	op         byte
	compressed bool // RSV1 on the first frame
	frames     []wireFrame
	payload    []byte // joined frame payloads, as on the wire
}

// wireSize is the number of payload bytes the message took on the wire.
func (m wireMsg) wireSize() int { return len(m.payload) }

// assemble splits frames into data messages and control frames, and
// reports every RSV misuse it sees (RFC 7692 §6.1: RSV1 only on the first
// frame of a data message; RSV2/RSV3 never, as nothing negotiates them).
func assemble(frames []wireFrame) (msgs []wireMsg, control []wireFrame, problems []string) {
	var cur *wireMsg
	for i, f := range frames {
		if f.rsv&(rsv2|rsv3) != 0 {
			problems = append(problems, fmt.Sprintf("frame %d %v: RSV2/RSV3 set", i, f))
		}
		switch {
		case f.op >= 0x8:
			if f.rsv != 0 {
				problems = append(problems, fmt.Sprintf("frame %d %v: RSV bit on a control frame", i, f))
			}
			control = append(control, f)
			continue
		case f.op == opCont:
			if f.rsv&rsv1 != 0 {
				problems = append(problems, fmt.Sprintf("frame %d %v: RSV1 on a continuation frame", i, f))
			}
			if cur == nil {
				problems = append(problems, fmt.Sprintf("frame %d %v: continuation without a message", i, f))
				continue
			}
		default:
			if cur != nil {
				problems = append(problems, fmt.Sprintf("frame %d %v: new message inside a fragmented one", i, f))
			}
			msgs = append(msgs, wireMsg{op: f.op, compressed: f.rsv&rsv1 != 0})
			cur = &msgs[len(msgs)-1]
		}
		cur.frames = append(cur.frames, f)
		cur.payload = append(cur.payload, f.payload...)
		if f.fin {
			cur = nil
		}
	}
	if cur != nil {
		problems = append(problems, "last message unfinished")
	}
	return msgs, control, problems
}

// window keeps the LZ77 history of a direction with context takeover: the
// uncompressed bytes of its compressed messages, the last size bytes
// (32 KiB if 0). A smaller size checks that the sender kept its
// back-references into earlier messages within a negotiated
// server_max_window_bits.
type window struct {
	size int
	hist []byte
}

// decode decompresses m (if compressed) with the history, and appends the
// result to the history when takeover is set.
func (w *window) decode(m wireMsg, takeover bool) ([]byte, error) {
	if !m.compressed {
		return m.payload, nil
	}
	var dict []byte
	if takeover {
		dict = w.hist
	}
	out, err := inflate(m.payload, dict)
	if err != nil {
		return nil, err
	}
	if takeover {
		size := w.size
		if size == 0 {
			size = 32 << 10
		}
		w.hist = append(w.hist, out...)
		if len(w.hist) > size {
			w.hist = append([]byte(nil), w.hist[len(w.hist)-size:]...)
		}
	}
	return out, nil
}

// rawConn is a WebSocket client written against the RFC, for checks no
// library client allows: raw frames both ways, with any RSV bits.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	resp *http.Response // the server's 101
	buf  []byte         // read bytes not yet parsed
}

// dialRaw opens a TCP connection to addr and upgrades it, offering the
// given Sec-WebSocket-Extensions header lines (none if empty). It fails
// the test unless the answer is 101.
func dialRaw(t *testing.T, addr string, extensions ...string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("raw dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	var req strings.Builder
	req.WriteString("GET /raw HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, e := range extensions {
		req.WriteString("Sec-WebSocket-Extensions: " + e + "\r\n")
	}
	req.WriteString("\r\n")
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatalf("raw: write upgrade: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("raw: read upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw: upgrade answered %s; want 101", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("raw: Sec-WebSocket-Accept %q; want %q", got, want)
	}
	c.SetDeadline(time.Time{})
	return &rawConn{t: t, c: c, br: br, resp: resp}
}

// extensions returns the Sec-WebSocket-Extensions answer, all lines joined.
func (r *rawConn) extensions() string {
	return strings.Join(r.resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
}

func (r *rawConn) write(p []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := r.c.Write(p); err != nil {
		r.t.Fatalf("raw: write %d bytes: %v", len(p), err)
	}
}

// readFrame returns the next frame from the server.
func (r *rawConn) readFrame(timeout time.Duration) (wireFrame, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	chunk := make([]byte, 64<<10)
	for {
		if f, n, ok := parseFrame(r.buf); ok {
			r.buf = r.buf[n:]
			if f.masked {
				return f, errors.New("server frame is masked (RFC 6455 §5.1 forbids it)")
			}
			return f, nil
		}
		n, err := r.br.Read(chunk)
		r.buf = append(r.buf, chunk[:n]...)
		if err != nil && n == 0 {
			return wireFrame{}, err
		}
	}
}

// readMessage returns the next data message, skipping pings and pongs.
func (r *rawConn) readMessage() wireMsg {
	r.t.Helper()
	var frames []wireFrame
	for {
		f, err := r.readFrame(waitTimeout)
		if err != nil {
			r.t.Fatalf("raw: read frame: %v (after %d frames of the message)", err, len(frames))
		}
		if f.op == opPing || f.op == opPong {
			continue
		}
		if f.op == opClose {
			code, reason := parseClosePayload(f.payload)
			r.t.Fatalf("raw: got close %d %q; want a data message", code, reason)
		}
		frames = append(frames, f)
		if f.fin {
			break
		}
	}
	msgs, _, problems := assemble(frames)
	for _, p := range problems {
		r.t.Errorf("raw: server frames: %s", p)
	}
	if len(msgs) != 1 {
		r.t.Fatalf("raw: %d messages in %v", len(msgs), frames)
	}
	return msgs[0]
}

func parseClosePayload(p []byte) (code int, reason string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}

// expectClose reads until the server's close frame, checks its code,
// answers it and checks that the server then closes the TCP connection.
// It returns how long the close frame took to come.
func (r *rawConn) expectClose(code int) time.Duration {
	r.t.Helper()
	start := time.Now()
	for {
		f, err := r.readFrame(waitTimeout)
		if err != nil {
			r.t.Fatalf("raw: waiting for close %d: %v", code, err)
		}
		if f.op != opClose {
			continue // data sent before the failure, pings
		}
		d := time.Since(start)
		got, reason := parseClosePayload(f.payload)
		if got != code {
			r.t.Errorf("raw: server closed with %d %q; want %d", got, reason, code)
		}
		if f.rsv != 0 {
			r.t.Errorf("raw: close frame has RSV bits %#x", f.rsv)
		}
		// Answer, as RFC 6455 §5.5.1 asks; the server must then close.
		_, _ = r.c.Write(appendClientFrame(nil, true, 0, opClose, f.payload[:min(2, len(f.payload))]))
		if _, err := r.readFrame(waitTimeout); err != io.EOF {
			r.t.Errorf("raw: after the close handshake read = %v; want EOF", err)
		}
		return d
	}
}

// sniffer is a TCP proxy between a client and the server that records the
// handshake and every frame in both directions. A frame is recorded before
// it is forwarded, so once a client has received a message the record of
// it is there.
type sniffer struct {
	t      *testing.T
	target string
	ln     net.Listener
	addr   string

	mu    sync.Mutex
	conns []*sniffConn
	wg    sync.WaitGroup
}

// sniffConn is one proxied connection.
type sniffConn struct {
	mu       sync.Mutex
	request  *http.Request  // the client's upgrade request
	response *http.Response // the server's answer
	toServer []wireFrame
	toClient []wireFrame
	errs     []string // unparsable traffic
}

// startSniffer listens on 127.0.0.1 and forwards every connection to
// target. Register it after startServer: its cleanup closes every proxied
// connection, which must happen before the server's cleanup checks.
func startSniffer(t *testing.T, target string) *sniffer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sniffer listen: %v", err)
	}
	s := &sniffer{t: t, target: target, ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sniffer) accept() {
	defer s.wg.Done()
	for {
		cc, err := s.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.DialTimeout("tcp", s.target, 5*time.Second)
		if err != nil {
			cc.Close()
			continue
		}
		rec := &sniffConn{}
		s.mu.Lock()
		s.conns = append(s.conns, rec)
		s.mu.Unlock()
		var both sync.WaitGroup
		both.Add(2)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			both.Wait()
			cc.Close()
			sc.Close()
		}()
		go func() { defer both.Done(); rec.pipe(cc, sc, true) }()
		go func() { defer both.Done(); rec.pipe(sc, cc, false) }()
	}
}

// pipe copies src to dst, recording what passes. At EOF it half-closes
// dst, so that the close handshake and TCP close order are preserved; on
// any other error it closes both.
func (rec *sniffConn) pipe(src, dst net.Conn, toServer bool) {
	var pending []byte
	handshake := true
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			pending = rec.record(pending, toServer, &handshake)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// record parses what it can of p and returns the unparsed rest.
func (rec *sniffConn) record(p []byte, toServer bool, handshake *bool) []byte {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if *handshake {
		i := bytes.Index(p, []byte("\r\n\r\n"))
		if i < 0 {
			return p
		}
		head := p[:i+4]
		br := bufio.NewReader(bytes.NewReader(head))
		if toServer {
			req, err := http.ReadRequest(br)
			if err != nil {
				rec.errs = append(rec.errs, "request: "+err.Error())
			}
			rec.request = req
		} else {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				rec.errs = append(rec.errs, "response: "+err.Error())
			}
			rec.response = resp
		}
		*handshake = false
		p = p[i+4:]
	}
	for {
		f, n, ok := parseFrame(p)
		if !ok {
			return p
		}
		if toServer {
			rec.toServer = append(rec.toServer, f)
		} else {
			rec.toClient = append(rec.toClient, f)
		}
		p = p[n:]
	}
}

// conn returns the i-th proxied connection, waiting for it to appear.
func (s *sniffer) conn(i int) *sniffConn {
	s.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s.mu.Lock()
		if i < len(s.conns) {
			c := s.conns[i]
			s.mu.Unlock()
			return c
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			s.t.Fatalf("sniffer: connection %d never came", i)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// snapshot returns the handshake and the frames recorded so far.
func (rec *sniffConn) snapshot() (req *http.Request, resp *http.Response, toServer, toClient []wireFrame, errs []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.request, rec.response, append([]wireFrame(nil), rec.toServer...),
		append([]wireFrame(nil), rec.toClient...), append([]string(nil), rec.errs...)
}

// wireExtensions returns the Sec-WebSocket-Extensions answer as it went
// over the wire, every line joined with ", ".
func (rec *sniffConn) wireExtensions() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.response == nil {
		return "<no response>"
	}
	return strings.Join(rec.response.Header.Values("Sec-WebSocket-Extensions"), ", ")
}

// jsonPayload returns exactly n bytes (n >= 2) of JSON market data: an
// array of ticker objects padded with spaces. Consecutive objects repeat
// their keys and most digits, as real feeds do.
func jsonPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	syms := []string{"BTC-USD", "ETH-USD", "SOL-USD", "XRP-EUR"}
	p := []byte{'['}
	for i := 0; ; i++ {
		var item []byte
		if i > 0 {
			item = append(item, ',')
		}
		item = fmt.Appendf(item, `{"s":%q,"b":%d.%02d,"a":%d.%02d,"q":%d,"t":%d}`,
			syms[r.IntN(len(syms))], 43000+r.IntN(300), r.IntN(100), 43000+r.IntN(300), r.IntN(100),
			r.IntN(5000), 1700000000000+int64(i)*37+int64(r.IntN(20)))
		if len(p)+len(item)+1 > n {
			break
		}
		p = append(p, item...)
	}
	for len(p) < n-1 {
		p = append(p, ' ')
	}
	return append(p, ']')[:n]
}

// hexPayload returns n random lowercase hex digits: compressible to about
// half, so large ones stay large after compression.
func hexPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x4e4))
	p := make([]byte, n)
	for i := range p {
		p[i] = "0123456789abcdef"[r.IntN(16)]
	}
	return p
}

// wordsPayload returns n bytes of random words from a fixed vocabulary of
// 4096: flate at level 1 finds matches and halves it, so a large one stays
// large (several frames) after compression. (Random hex digits would not
// do: klauspost's levels 1–2 store input in which they find no match.)
func wordsPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x3d))
	vocab := make([][]byte, 4096)
	for i := range vocab {
		w := make([]byte, 3+r.IntN(8))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = w
	}
	p := make([]byte, 0, n+16)
	for len(p) < n {
		p = append(p, vocab[r.IntN(len(vocab))]...)
		p = append(p, ' ')
	}
	return p[:n]
}

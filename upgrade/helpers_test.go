package upgrade

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The RFC 6455 §1.2 sample request and §1.3 key and accept value.
const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	rfcSample = "GET /chat HTTP/1.1\r\n" +
		"Host: server.example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Origin: http://example.com\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"\r\n"
)

// chromeRequest is what Chrome sends to open a WebSocket.
const chromeRequest = "GET /ws/chat?room=lobby&token=abc123 HTTP/1.1\r\n" +
	"Host: gateway.example.com:8443\r\n" +
	"Connection: Upgrade\r\n" +
	"Pragma: no-cache\r\n" +
	"Cache-Control: no-cache\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Upgrade: websocket\r\n" +
	"Origin: https://app.example.com\r\n" +
	"Sec-WebSocket-Version: 13\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=7f3a9c2e4b1d8f6a; theme=dark; _ga=GA1.2.123456789.1700000000\r\n" +
	"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
	"Sec-WebSocket-Protocol: v2.chat, v1.chat\r\n" +
	"\r\n"

// baseHeaders are the header lines of a minimal valid request.
var baseHeaders = []string{
	"Host: server.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: " + rfcKey,
	"Sec-WebSocket-Version: 13",
}

// build joins a request line and header lines with CRLF and ends the
// request with the blank line.
func build(requestLine string, headers ...string) string {
	var b strings.Builder
	b.WriteString(requestLine)
	b.WriteString("\r\n")
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// valid returns a minimal valid request with extra header lines appended.
func valid(extra ...string) string {
	return build("GET /chat HTTP/1.1", append(append([]string(nil), baseHeaders...), extra...)...)
}

// replace returns the minimal valid request with the base header whose
// name is name replaced by lines (none: removed).
func replace(name string, lines ...string) string {
	var hs []string
	for _, h := range baseHeaders {
		if strings.HasPrefix(h, name+":") {
			hs = append(hs, lines...)
			continue
		}
		hs = append(hs, h)
	}
	return build("GET /chat HTTP/1.1", hs...)
}

// trailer stands for the first WebSocket frame sent right behind the
// request: a masked "Hello" text frame (RFC 6455 §5.7).
const trailer = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"

// result is the outcome of parsing one input: n, err, and a rendering of
// every accessor when n > 0.
type result struct {
	n    int
	err  error
	view string
}

func (r result) String() string {
	return fmt.Sprintf("n=%d err=%v\n%s", r.n, r.err, r.view)
}

// probe names used by render.
var (
	probeHeaders   = []string{"host", "X-Empty", "sec-websocket-protocol", "absent", "COOKIE"}
	probeCookies   = []string{"a", "b", "c", "session", "theme", "absent", ""}
	probeProtocols = [][]string{nil, {"chat"}, {"superchat", "chat"}, {"v1.chat"}, {"v1.chat", "v2.chat"}, {"none"}}
)

// render describes everything the accessors of a parsed request return,
// with nil shown apart from empty, so two parses can be compared.
func render(r *Request) string {
	var b strings.Builder
	q := func(label string, v []byte) {
		if v == nil {
			fmt.Fprintf(&b, "%s=<nil>\n", label)
		} else {
			fmt.Fprintf(&b, "%s=%q\n", label, v)
		}
	}
	q("method", r.Method())
	q("target", r.Target())
	q("path", r.Path())
	q("query", r.Query())
	q("host", r.Host())
	q("origin", r.Origin())
	q("key", r.Key())
	r.VisitHeaders(func(name, value []byte) bool {
		fmt.Fprintf(&b, "header %q: %q\n", name, value)
		return true
	})
	for _, h := range probeHeaders {
		q("Header("+h+")", r.Header(h))
	}
	for _, c := range probeCookies {
		q("Cookie("+c+")", r.Cookie(c))
	}
	for _, p := range probeProtocols {
		fmt.Fprintf(&b, "Protocol(%q)=%q\n", p, r.Protocol(p))
	}
	q("extensions", r.AppendExtensions(nil))
	return b.String()
}

// parseOnce parses in with one call, on a slice whose capacity ends at its
// length so that reads past it would panic.
func parseOnce(cfg *Config, in []byte) result {
	buf := bytes.Clone(in)
	var r Request
	r.Reset(cfg)
	n, err := r.Parse(buf[:len(buf):len(buf)])
	res := result{n: n, err: err}
	if n > 0 {
		res.view = render(&r)
	}
	return res
}

// parseSplit feeds in as the event loop does: chunks of the sizes next
// returns, each call with every byte so far in a freshly allocated buffer,
// while the previous buffer is overwritten so that a parser that kept a
// slice into it, instead of an offset, sees garbage.
func parseSplit(cfg *Config, in []byte, next func() int) result {
	var r Request
	r.Reset(cfg)
	var buf []byte
	for off := 0; ; {
		k := min(max(next(), 1), len(in)-off)
		nb := make([]byte, len(buf)+k)
		copy(nb, buf)
		copy(nb[len(buf):], in[off:off+k])
		for i := range buf {
			buf[i] = 0xff
		}
		buf = nb
		off += k
		n, err := r.Parse(buf)
		if n > 0 || err != nil || off == len(in) {
			res := result{n: n, err: err}
			if n > 0 {
				res.view = render(&r)
			}
			return res
		}
	}
}

// checkSplits parses in one shot, byte by byte and in random chunks, fails
// t if the results differ, and returns the one-shot result.
func checkSplits(t testing.TB, cfg *Config, in []byte, seed uint64) result {
	t.Helper()
	want := parseOnce(cfg, in)
	if len(in) == 0 {
		return want
	}
	got := parseSplit(cfg, in, func() int { return 1 })
	if got.String() != want.String() {
		t.Fatalf("byte by byte:\n%v\none shot:\n%v", got, want)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for range 4 {
		maxChunk := 1 + rng.IntN(64)
		got := parseSplit(cfg, in, func() int { return 1 + rng.IntN(maxChunk) })
		if got.String() != want.String() {
			t.Fatalf("random chunks (max %d):\n%v\none shot:\n%v", maxChunk, got, want)
		}
	}
	return want
}

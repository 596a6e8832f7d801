package upgrade

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"
)

// parseCase is one input with the expected outcome. With err == nil and
// incomplete false, the input must parse to exactly len(in) bytes (the
// frame bytes appended by the test are left over).
type parseCase struct {
	name       string
	in         string
	cfg        *Config
	err        error
	incomplete bool // want n == 0 and no error
}

var parseCases = []parseCase{
	// RFC 6455 §1.2, §4.2.1.
	{name: "rfc 6455 1.2 sample", in: rfcSample},
	{name: "minimal", in: valid()},
	{name: "chrome", in: chromeRequest},
	{name: "HTTP/1.2 is 1.1 or higher", in: build("GET /chat HTTP/1.2", baseHeaders...)},
	{name: "HTTP/1.9", in: build("GET /chat HTTP/1.9", baseHeaders...)},
	{name: "root target", in: build("GET / HTTP/1.1", baseHeaders...)},
	{name: "target with query", in: build("GET /a/b?x=1&y={2}|^ HTTP/1.1", baseHeaders...)},
	{name: "absolute http target", in: build("GET http://server.example.com/chat?x HTTP/1.1", baseHeaders...)},
	{name: "absolute HTTPS target without path", in: build("GET HTTPS://server.example.com:443 HTTP/1.1", baseHeaders...)},
	{name: "leading empty lines", in: "\r\n\r\n" + valid()},
	{name: "lower-case header names", in: build("GET /chat HTTP/1.1", "host: h", "upgrade: websocket", "connection: upgrade", "sec-websocket-key: "+rfcKey, "sec-websocket-version: 13")},
	{name: "upper-case header names and values", in: build("GET /chat HTTP/1.1", "HOST: h", "UPGRADE: WEBSOCKET", "CONNECTION: UPGRADE", "SEC-WEBSOCKET-KEY: "+rfcKey, "SEC-WEBSOCKET-VERSION: 13")},
	{name: "OWS around values", in: build("GET /chat HTTP/1.1", "Host:h", "Upgrade: \twebsocket\t ", "Connection:Upgrade ", "Sec-WebSocket-Key:\t"+rfcKey+" ", "Sec-WebSocket-Version:  13  ")},
	{name: "tab and obs-text inside a value", in: valid("X-Note: a\tb \xff\x80 c")},
	{name: "empty header value", in: valid("X-Empty:")},
	{name: "content-length 0", in: valid("Content-Length: 0")},
	{name: "repeated origin: first kept", in: valid("Origin: https://a.example", "Origin: https://b.example")},

	// Request line.
	{name: "POST", in: build("POST /chat HTTP/1.1", baseHeaders...), err: ErrMethod},
	{name: "method is case-sensitive", in: build("get /chat HTTP/1.1", baseHeaders...), err: ErrMethod},
	{name: "CONNECT", in: build("CONNECT server.example.com:443 HTTP/1.1", baseHeaders...), err: ErrMethod},
	{name: "method known from request line alone", in: "POST /chat HTTP/1.1\r\n", err: ErrMethod},
	{name: "HTTP/1.0", in: build("GET /chat HTTP/1.0", baseHeaders...), err: ErrHTTPVersion},
	{name: "HTTP/0.9", in: build("GET /chat HTTP/0.9", baseHeaders...), err: ErrHTTPVersion},
	{name: "HTTP/2.0", in: build("GET /chat HTTP/2.0", baseHeaders...), err: ErrHTTPVersion},
	{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: ErrHTTPVersion},
	{name: "version before method", in: build("POST /chat HTTP/1.0", baseHeaders...), err: ErrHTTPVersion},
	{name: "HTTP/1.10", in: build("GET /chat HTTP/1.10", baseHeaders...), err: ErrMalformed},
	{name: "lower-case http", in: build("GET /chat http/1.1", baseHeaders...), err: ErrMalformed},
	{name: "HTTP/1", in: build("GET /chat HTTP/1", baseHeaders...), err: ErrMalformed},
	{name: "HTTP/x.1", in: build("GET /chat HTTP/x.1", baseHeaders...), err: ErrMalformed},
	{name: "no version", in: build("GET /chat", baseHeaders...), err: ErrMalformed},
	{name: "method only", in: build("GET", baseHeaders...), err: ErrMalformed},
	{name: "two spaces", in: build("GET  /chat HTTP/1.1", baseHeaders...), err: ErrMalformed},
	{name: "leading space", in: build(" GET /chat HTTP/1.1", baseHeaders...), err: ErrMalformed},
	{name: "trailing space", in: build("GET /chat HTTP/1.1 ", baseHeaders...), err: ErrMalformed},
	{name: "tab separator", in: build("GET\t/chat HTTP/1.1", baseHeaders...), err: ErrMalformed},
	{name: "method not a token", in: build("G(T /chat HTTP/1.1", baseHeaders...), err: ErrMalformed},
	{name: "space in target", in: build("GET /a b HTTP/1.1", baseHeaders...), err: ErrMalformed},
	{name: "CR in request line", in: "GET /chat HTTP/1.1\r\r\n" + strings.Join(baseHeaders, "\r\n") + "\r\n\r\n", err: ErrMalformed},
	{name: "CR in target", in: build("GET /a\rb HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "asterisk target", in: build("GET * HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "relative target", in: build("GET chat HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "authority target", in: build("GET server.example.com:80 HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "fragment", in: build("GET /chat#x HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "NUL in target", in: build("GET /ch\x00at HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "DEL in target", in: build("GET /chat\x7f HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "raw UTF-8 in target", in: build("GET /caf\xc3\xa9 HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "ws scheme", in: build("GET ws://server.example.com/chat HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "ftp scheme", in: build("GET ftp://server.example.com/chat HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "absolute target without host", in: build("GET http:///chat HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "absolute target scheme only", in: build("GET http:// HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "userinfo", in: build("GET http://user@server.example.com/ HTTP/1.1", baseHeaders...), err: ErrTarget},
	{name: "bad port in absolute target", in: build("GET http://server.example.com:8x/ HTTP/1.1", baseHeaders...), err: ErrTarget},

	// Line endings.
	{name: "bare LF ends request line", in: "GET /chat HTTP/1.1\n" + strings.Join(baseHeaders, "\r\n") + "\r\n\r\n", err: ErrMalformed},
	{name: "bare LF ends header", in: "GET /chat HTTP/1.1\r\nHost: h\n", err: ErrMalformed},
	{name: "bare LF blank line", in: "GET /chat HTTP/1.1\r\n" + strings.Join(baseHeaders, "\r\n") + "\r\n\n", err: ErrMalformed},
	{name: "bare LF first", in: "\nGET /chat HTTP/1.1\r\n", err: ErrMalformed},
	{name: "all bare LF", in: strings.ReplaceAll(valid(), "\r\n", "\n"), err: ErrMalformed},
	{name: "CR in header value", in: valid("X-A: a\rb"), err: ErrHeaderField},
	{name: "CR CR LF", in: valid("X-A: a\r"), err: ErrHeaderField},

	// Header field syntax.
	{name: "obs-fold with space", in: valid("X-A: 1", " 2"), err: ErrHeaderField},
	{name: "obs-fold with tab", in: valid("X-A: 1", "\t2"), err: ErrHeaderField},
	{name: "whitespace before first field", in: build("GET /chat HTTP/1.1", append([]string{" X-A: 1"}, baseHeaders...)...), err: ErrHeaderField},
	{name: "space before colon", in: replace("Host", "Host : server.example.com"), err: ErrHeaderField},
	{name: "tab before colon", in: replace("Host", "Host\t: server.example.com"), err: ErrHeaderField},
	{name: "no colon", in: valid("X-A 1"), err: ErrHeaderField},
	{name: "empty name", in: valid(": 1"), err: ErrHeaderField},
	{name: "name not a token", in: valid("X(A): 1"), err: ErrHeaderField},
	{name: "non-ASCII name", in: valid("X-\xc3\xa9: 1"), err: ErrHeaderField},
	{name: "NUL in value", in: valid("X-A: a\x00b"), err: ErrHeaderField},
	{name: "control in value", in: valid("X-A: a\x01b"), err: ErrHeaderField},
	{name: "DEL in value", in: valid("X-A: a\x7fb"), err: ErrHeaderField},
	{name: "Content-Length", in: valid("Content-Length: 5"), err: ErrBody},
	{name: "Transfer-Encoding", in: valid("Transfer-Encoding: chunked"), err: ErrBody},

	// Host.
	{name: "no Host", in: replace("Host"), err: ErrHost},
	{name: "repeated Host", in: valid("Host: server.example.com"), err: ErrHost},
	{name: "repeated Host fails early", in: "GET /chat HTTP/1.1\r\nHost: a\r\nHost: b\r\n", err: ErrHost},
	{name: "empty Host", in: replace("Host", "Host:"), err: ErrHost},
	{name: "Host with port", in: replace("Host", "Host: server.example.com:8080")},
	{name: "Host IPv4", in: replace("Host", "Host: 192.0.2.1:80")},
	{name: "Host IPv6", in: replace("Host", "Host: [2001:db8::1]:8080")},
	{name: "Host IPv6 without port", in: replace("Host", "Host: [::1]")},
	{name: "Host empty port", in: replace("Host", "Host: h:")},
	{name: "Host with space", in: replace("Host", "Host: a b"), err: ErrHost},
	{name: "Host with userinfo", in: replace("Host", "Host: u@h"), err: ErrHost},
	{name: "Host with path", in: replace("Host", "Host: h/x"), err: ErrHost},
	{name: "Host bad port", in: replace("Host", "Host: h:8x"), err: ErrHost},
	{name: "Host two colons", in: replace("Host", "Host: h:1:2"), err: ErrHost},
	{name: "Host only port", in: replace("Host", "Host: :80"), err: ErrHost},
	{name: "Host open bracket", in: replace("Host", "Host: [::1"), err: ErrHost},
	{name: "Host empty brackets", in: replace("Host", "Host: []"), err: ErrHost},
	{name: "Host junk after bracket", in: replace("Host", "Host: [::1]x"), err: ErrHost},
	{name: "absolute target and Host both required", in: build("GET http://server.example.com/chat HTTP/1.1", baseHeaders[1:]...), err: ErrHost},

	// Upgrade.
	{name: "no Upgrade", in: replace("Upgrade"), err: ErrUpgrade},
	{name: "Upgrade mixed case", in: replace("Upgrade", "Upgrade: WebSocket")},
	{name: "Upgrade list", in: replace("Upgrade", "Upgrade: h2c, websocket")},
	{name: "Upgrade list with empty elements", in: replace("Upgrade", "Upgrade: ,, websocket ,")},
	{name: "Upgrade repeated", in: replace("Upgrade", "Upgrade: h2c", "Upgrade: websocket")},
	{name: "Upgrade other protocol", in: replace("Upgrade", "Upgrade: h2c"), err: ErrUpgrade},
	{name: "Upgrade with version", in: replace("Upgrade", "Upgrade: websocket/13"), err: ErrUpgrade},
	{name: "Upgrade prefix", in: replace("Upgrade", "Upgrade: websockets"), err: ErrUpgrade},
	{name: "Upgrade split word", in: replace("Upgrade", "Upgrade: web socket"), err: ErrUpgrade},
	{name: "Upgrade empty", in: replace("Upgrade", "Upgrade:"), err: ErrUpgrade},

	// Connection.
	{name: "no Connection", in: replace("Connection"), err: ErrConnection},
	{name: "Connection list", in: replace("Connection", "Connection: keep-alive, Upgrade")},
	{name: "Connection lower case", in: replace("Connection", "Connection: upgrade")},
	{name: "Connection repeated", in: replace("Connection", "Connection: keep-alive", "Connection: UPGRADE")},
	{name: "Connection without token", in: replace("Connection", "Connection: keep-alive"), err: ErrConnection},
	{name: "Connection token prefix", in: replace("Connection", "Connection: upgraded"), err: ErrConnection},
	{name: "Connection token in quotes", in: replace("Connection", `Connection: "Upgrade"`), err: ErrConnection},

	// Sec-WebSocket-Key.
	{name: "no Key", in: replace("Sec-WebSocket-Key"), err: ErrKey},
	{name: "repeated Key", in: valid("Sec-WebSocket-Key: " + rfcKey), err: ErrKey},
	{name: "all-zero nonce", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==")},
	{name: "Key 23 bytes", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: "+rfcKey[:23]), err: ErrKey},
	{name: "Key 24 bytes without padding", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQxx"), err: ErrKey},
	{name: "Key bad character", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!=="), err: ErrKey},
	{name: "Key URL alphabet", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j_-=="), err: ErrKey},
	{name: "Key non-zero padding bits", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), err: ErrKey},
	{name: "Key of 15 bytes", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j"), err: ErrKey},
	{name: "Key of 18 bytes", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA"), err: ErrKey},
	{name: "Key of 32 bytes", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXRoZSBzYW1wbGUgbm9uY2U="), err: ErrKey},
	{name: "Key with inner space", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ="), err: ErrKey},
	{name: "Key empty", in: replace("Sec-WebSocket-Key", "Sec-WebSocket-Key:"), err: ErrKey},
	{name: "bad Key fails early", in: "GET /chat HTTP/1.1\r\nSec-WebSocket-Key: x\r\n", err: ErrKey},

	// Sec-WebSocket-Version.
	{name: "no Version", in: replace("Sec-WebSocket-Version"), err: ErrVersionMissing},
	{name: "Version 8", in: replace("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), err: ErrVersion},
	{name: "Version list", in: replace("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8"), err: ErrVersion},
	{name: "Version 013", in: replace("Sec-WebSocket-Version", "Sec-WebSocket-Version: 013"), err: ErrVersion},
	{name: "Version empty", in: replace("Sec-WebSocket-Version", "Sec-WebSocket-Version:"), err: ErrVersion},
	{name: "Version repeated", in: valid("Sec-WebSocket-Version: 13"), err: ErrVersion},
	{name: "bad Version fails early", in: "GET /chat HTTP/1.1\r\nSec-WebSocket-Version: 7\r\n", err: ErrVersion},

	// Order of the final checks (RFC 6455 §4.2.1 order).
	{name: "nothing but the request line", in: build("GET /chat HTTP/1.1"), err: ErrHost},
	{name: "Upgrade before Connection", in: build("GET /chat HTTP/1.1", "Host: h"), err: ErrUpgrade},
	{name: "Connection before Key", in: build("GET /chat HTTP/1.1", "Host: h", "Upgrade: websocket"), err: ErrConnection},
	{name: "Key before Version", in: build("GET /chat HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: upgrade"), err: ErrKey},

	// Incomplete input.
	{name: "empty", in: "", incomplete: true},
	{name: "partial request line", in: "GET /ch", incomplete: true},
	{name: "request line only", in: "GET /chat HTTP/1.1\r\n", incomplete: true},
	{name: "CR pending", in: "GET /chat HTTP/1.1\r\nHost: h\r", incomplete: true},
	{name: "no blank line", in: strings.TrimSuffix(valid(), "\r\n"), incomplete: true},
	{name: "blank line CR only", in: strings.TrimSuffix(valid(), "\n"), incomplete: true},
	{name: "empty lines only", in: "\r\n\r\n\r\n", incomplete: true},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for i, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tc.in + trailer)
			if tc.err != nil || tc.incomplete {
				in = []byte(tc.in) // nothing may follow an invalid or partial request
			}
			res := checkSplits(t, tc.cfg, in, uint64(i))
			switch {
			case tc.err != nil:
				if res.err != tc.err || res.n != 0 {
					t.Fatalf("got n=%d err=%v, want err %v", res.n, res.err, tc.err)
				}
			case tc.incomplete:
				if res.n != 0 || res.err != nil {
					t.Fatalf("got n=%d err=%v, want n=0 and no error", res.n, res.err)
				}
			default:
				if res.err != nil || res.n != len(tc.in) {
					t.Fatalf("got n=%d err=%v, want n=%d", res.n, res.err, len(tc.in))
				}
				if string(in[res.n:]) != trailer {
					t.Fatalf("buf[n:] = %q, want the frame %q", in[res.n:], trailer)
				}
			}
		})
	}
}

// TestParseErrorsAreSentinels checks that Parse's errors compare equal to
// the exported sentinels both with == and errors.Is, and carry the status.
func TestParseErrorsAreSentinels(t *testing.T) {
	t.Parallel()
	var r Request
	_, err := r.Parse([]byte(replace("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8")))
	if err != ErrVersion || !errors.Is(err, ErrVersion) {
		t.Fatalf("err = %#v, want ErrVersion", err)
	}
	re, ok := AsReject(err)
	if !ok || re.Status != 426 || re.Header != "Sec-WebSocket-Version: 13\r\n" {
		t.Fatalf("AsReject = %#v, %v", re, ok)
	}
}

// TestParseLimits checks each size limit at its edge: the request that
// just fits, and the same request one byte or one line over.
func TestParseLimits(t *testing.T) {
	t.Parallel()
	fits := valid()
	many := func(n int) string { // a valid request with n header lines
		var extra []string
		for i := len(baseHeaders); i < n; i++ {
			extra = append(extra, "X-Filler: "+strings.Repeat("f", i%7))
		}
		return valid(extra...)
	}
	longLine := func(n int) string { // a request line of exactly n bytes
		return "GET /" + strings.Repeat("a", n-len("GET / HTTP/1.1")) + " HTTP/1.1"
	}
	cases := []parseCase{
		{name: "header bytes at limit", in: fits, cfg: &Config{MaxHeaderBytes: len(fits)}},
		{name: "header bytes one over", in: fits, cfg: &Config{MaxHeaderBytes: len(fits) - 1}, err: ErrHeaderTooLarge},
		{name: "header bytes over before the end", in: fits[:len(fits)-10], cfg: &Config{MaxHeaderBytes: 50}, err: ErrHeaderTooLarge},
		{name: "header bytes over inside a line", in: "GET /chat HTTP/1.1\r\nX-A: " + strings.Repeat("v", 100), cfg: &Config{MaxHeaderBytes: 60}, err: ErrHeaderTooLarge},
		{name: "default header bytes at limit", in: valid("X-Big: " + strings.Repeat("b", DefaultMaxHeaderBytes-len(valid())-9))},
		{name: "default header bytes one over", in: valid("X-Big: " + strings.Repeat("b", DefaultMaxHeaderBytes-len(valid())-8)), err: ErrHeaderTooLarge},
		{name: "leading empty lines count", in: strings.Repeat("\r\n", 10) + fits, cfg: &Config{MaxHeaderBytes: len(fits) + 19}, err: ErrHeaderTooLarge},
		{name: "endless header line", in: "GET /chat HTTP/1.1\r\nX-A: " + strings.Repeat("1", 9000), err: ErrHeaderTooLarge},
		{name: "endless header lines", in: "GET /chat HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", 1200), cfg: &Config{MaxHeaders: 5000}, err: ErrHeaderTooLarge},
		{name: "header count before size", in: "GET /chat HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", 1200), err: ErrTooManyHeaders},

		{name: "headers at limit", in: many(10), cfg: &Config{MaxHeaders: 10}},
		{name: "headers one over", in: many(11), cfg: &Config{MaxHeaders: 10}, err: ErrTooManyHeaders},
		{name: "headers one over fails early", in: strings.TrimSuffix(many(11), "\r\n"), cfg: &Config{MaxHeaders: 10}, err: ErrTooManyHeaders},
		{name: "default headers at limit", in: many(DefaultMaxHeaders)},
		{name: "default headers one over", in: many(DefaultMaxHeaders + 1), err: ErrTooManyHeaders},

		{name: "request line at limit", in: build(longLine(100), baseHeaders...), cfg: &Config{MaxRequestLine: 100}},
		{name: "request line one over", in: build(longLine(101), baseHeaders...), cfg: &Config{MaxRequestLine: 100}, err: ErrRequestLineTooLong},
		{name: "request line over before its end", in: longLine(200)[:150], cfg: &Config{MaxRequestLine: 100}, err: ErrRequestLineTooLong},
		{name: "request line at limit, CR pending", in: longLine(100) + "\r", cfg: &Config{MaxRequestLine: 100}, incomplete: true},
		{name: "request line at limit plus one, bare LF", in: longLine(101) + "\n", cfg: &Config{MaxRequestLine: 100}, err: ErrMalformed},
		{name: "default request line at limit", in: build(longLine(DefaultMaxRequestLine), baseHeaders...)},
		{name: "default request line one over", in: build(longLine(DefaultMaxRequestLine+1), baseHeaders...), err: ErrRequestLineTooLong},
		{name: "garbage without LF", in: strings.Repeat("\x16\x03\x01", 2000), err: ErrRequestLineTooLong},
		{name: "request line limit above header limit", in: build(longLine(300), baseHeaders...), cfg: &Config{MaxRequestLine: 1000, MaxHeaderBytes: 200}, err: ErrHeaderTooLarge},
		{name: "empty lines before request line do not count for it", in: strings.Repeat("\r\n", 60) + build(longLine(100), baseHeaders...), cfg: &Config{MaxRequestLine: 100}},
		{name: "negative limits mean defaults", in: valid(), cfg: &Config{MaxHeaderBytes: -1, MaxHeaders: -1, MaxRequestLine: -1}},
		{name: "huge limits are capped", in: valid(), cfg: &Config{MaxHeaderBytes: math.MaxInt, MaxHeaders: math.MaxInt, MaxRequestLine: math.MaxInt}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{}
			if tc.cfg != nil {
				cfg = *tc.cfg
			}
			res := checkSplits(t, tc.cfg, []byte(tc.in), uint64(1000+i))
			if tc.cfg != nil && *tc.cfg != cfg {
				t.Fatalf("Config changed to %+v", *tc.cfg)
			}
			switch {
			case tc.err != nil:
				if res.err != tc.err {
					t.Fatalf("got n=%d err=%v, want %v", res.n, res.err, tc.err)
				}
			case tc.incomplete:
				if res.n != 0 || res.err != nil {
					t.Fatalf("got n=%d err=%v, want n=0", res.n, res.err)
				}
			default:
				if res.err != nil || res.n != len(tc.in) {
					t.Fatalf("got n=%d err=%v, want n=%d", res.n, res.err, len(tc.in))
				}
			}
		})
	}
}

// TestParseSticky checks what later calls return after a result, Reset
// reuse, the zero Request and a shrinking buffer.
func TestParseSticky(t *testing.T) {
	t.Parallel()
	in := []byte(rfcSample + trailer)

	var r Request // zero value: default limits, no Reset
	n, err := r.Parse(in)
	if n != len(rfcSample) || err != nil {
		t.Fatalf("zero Request: n=%d err=%v", n, err)
	}
	moved := append([]byte(nil), in...)
	if n2, err := r.Parse(moved); n2 != n || err != nil {
		t.Fatalf("again: n=%d err=%v, want %d", n2, err, n)
	}
	if &r.Key()[0] != &moved[r.key.start] {
		t.Fatal("accessors do not follow the buffer of the last call")
	}
	if _, err := r.Parse(in[:10]); err != ErrInternal {
		t.Fatalf("shorter buffer after success: err=%v", err)
	}

	r.Reset(nil)
	if r.Key() != nil || r.Method() != nil || r.Header("host") != nil || r.Protocol([]string{"chat"}) != "" {
		t.Fatal("accessors return data after Reset")
	}
	if _, err := r.Parse([]byte("POST / HTTP/1.1\r\n")); err != ErrMethod {
		t.Fatalf("err=%v, want ErrMethod", err)
	}
	if n, err := r.Parse([]byte(rfcSample)); n != 0 || err != ErrMethod {
		t.Fatalf("after an error: n=%d err=%v, want ErrMethod again", n, err)
	}
	if r.Method() != nil {
		t.Fatal("accessor after an error")
	}

	r.Reset(&Config{})
	if n, err := r.Parse(in[:20]); n != 0 || err != nil {
		t.Fatalf("partial: n=%d err=%v", n, err)
	}
	if r.Host() != nil {
		t.Fatal("accessor before completion")
	}
	if _, err := r.Parse(in[:5]); err != ErrInternal {
		t.Fatalf("shrinking buffer: err=%v, want ErrInternal", err)
	}
	r.Reset(nil)
	if n, err := r.Parse(in); n != len(rfcSample) || err != nil {
		t.Fatalf("after Reset: n=%d err=%v", n, err)
	}
}

// TestRequestSize keeps the pooled handshake state small (see the Request
// doc).
func TestRequestSize(t *testing.T) {
	t.Parallel()
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(Request{}) != 136 {
		t.Errorf("Request is %d bytes on 64-bit, the doc says 136", unsafe.Sizeof(Request{}))
	}
}

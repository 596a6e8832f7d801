package upgrade

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"testing"
)

// within reports whether s is a subslice of b (an empty s always is).
func within(b, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := range b {
		if &b[i] == &s[0] {
			return i+len(s) <= len(b)
		}
	}
	return false
}

// FuzzParse feeds arbitrary bytes, with arbitrary limits, to Parse and
// checks that it does not panic, that chunked input gives the one-shot
// result, that a success obeys the limits and RFC 6455 §4.2.1, that the
// accessors return subslices of the request, and that net/http reads an
// accepted request the same way.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in+trailer), uint16(0), uint8(0), uint16(0), uint64(1))
	}
	f.Add([]byte(chromeRequest), uint16(len(chromeRequest)), uint8(15), uint16(46), uint64(2))
	f.Add([]byte(chromeRequest), uint16(len(chromeRequest)-1), uint8(15), uint16(46), uint64(3))
	f.Add([]byte(chromeRequest), uint16(0), uint8(14), uint16(0), uint64(4))
	f.Add([]byte(chromeRequest), uint16(0), uint8(0), uint16(45), uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, maxBytes uint16, maxHeaders uint8, maxLine uint16, seed uint64) {
		cfg := &Config{MaxHeaderBytes: int(maxBytes), MaxHeaders: int(maxHeaders), MaxRequestLine: int(maxLine)}
		limBytes := cmpDefault(int(maxBytes), DefaultMaxHeaderBytes)
		limHeaders := cmpDefault(int(maxHeaders), DefaultMaxHeaders)
		limLine := cmpDefault(int(maxLine), DefaultMaxRequestLine)

		buf := data[:len(data):len(data)]
		var r Request
		r.Reset(cfg)
		n, err := r.Parse(buf)
		if n < 0 || n > len(buf) || n > 0 && err != nil {
			t.Fatalf("n=%d err=%v for %d bytes", n, err, len(buf))
		}
		if err != nil {
			if _, ok := err.(RejectError); !ok {
				t.Fatalf("error %T %v is not a RejectError", err, err)
			}
		}

		// Byte by byte, on prefixes of the same buffer: the first
		// non-pending answer must be the one-shot answer.
		var p Request
		p.Reset(cfg)
		for i := 0; i <= len(buf); i++ {
			pn, perr := p.Parse(buf[:i])
			if pn == 0 && perr == nil {
				continue
			}
			if pn != n || perr != err {
				t.Fatalf("byte by byte at %d: n=%d err=%v; one shot: n=%d err=%v", i, pn, perr, n, err)
			}
			if pn > 0 && pn != i {
				t.Fatalf("complete at %d bytes but n=%d", i, pn)
			}
			break
		}
		if len(buf) > 0 {
			// Random chunks, each call on a new buffer: the whole view must
			// match, accessors included.
			rng := rand.New(rand.NewPCG(seed, seed>>7))
			want := parseOnce(cfg, buf)
			maxChunk := max(32, len(buf)/16) // about 16 to 32 calls at most
			got := parseSplit(cfg, buf, func() int { return 1 + rng.IntN(maxChunk) })
			if got.String() != want.String() {
				t.Fatalf("chunked:\n%v\none shot:\n%v", got, want)
			}
		}
		if n == 0 {
			return
		}

		// Limits.
		if n > limBytes {
			t.Fatalf("request of %d bytes accepted with MaxHeaderBytes %d", n, limBytes)
		}
		req := buf[:n]
		skipped := 0
		for bytes.HasPrefix(req[skipped:], []byte("\r\n")) {
			skipped += 2
		}
		if line := bytes.IndexByte(req[skipped:], '\n') - 1; line > limLine {
			t.Fatalf("request line of %d bytes accepted with MaxRequestLine %d", line, limLine)
		}
		headers := 0
		r.VisitHeaders(func(name, value []byte) bool {
			headers++
			if !within(req, name) || !within(req, value) || !isToken(name) {
				t.Fatalf("header %q: %q not within the request", name, value)
			}
			return true
		})
		if headers > limHeaders {
			t.Fatalf("%d headers accepted with MaxHeaders %d", headers, limHeaders)
		}

		// The accessors point into buf[:n].
		for _, s := range [][]byte{r.Method(), r.Target(), r.Path(), r.Query(), r.Host(), r.Origin(), r.Key(),
			r.Header("upgrade"), r.Cookie("a")} {
			if !within(req, s) {
				t.Fatalf("accessor value %q is not within buf[:n]", s)
			}
		}

		// RFC 6455 §4.2.1 holds.
		if string(r.Method()) != "GET" || len(r.Host()) == 0 || r.Header("host") == nil {
			t.Fatalf("accepted without GET or Host: %q", req)
		}
		if nonce, err := base64.StdEncoding.DecodeString(string(r.Key())); err != nil || len(nonce) != 16 {
			t.Fatalf("accepted key %q", r.Key())
		}
		if string(r.Header("sec-websocket-version")) != "13" {
			t.Fatalf("accepted version %q", r.Header("sec-websocket-version"))
		}

		// The request alone parses the same; one byte less is pending.
		var again Request
		again.Reset(cfg)
		if n2, err2 := again.Parse(req[:n:n]); n2 != n || err2 != nil {
			t.Fatalf("request alone: n=%d err=%v", n2, err2)
		}
		again.Reset(cfg)
		if n2, err2 := again.Parse(req[: n-1 : n-1]); n2 != 0 || err2 != nil {
			t.Fatalf("request minus a byte: n=%d err=%v", n2, err2)
		}

		// net/http reads an accepted request the same way. It does not skip
		// empty lines before the request line, and it refuses bad %-escapes,
		// which this parser leaves to the application.
		if skipped > 0 || bytes.IndexByte(r.Target(), '%') >= 0 {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
		if err != nil {
			t.Fatalf("net/http refuses an accepted request: %v\n%q", err, req)
		}
		if hr.Method != "GET" || hr.RequestURI != string(r.Target()) || hr.ProtoMajor != 1 {
			t.Fatalf("net/http reads %s %s %s", hr.Method, hr.RequestURI, hr.Proto)
		}
		r.VisitHeaders(func(name, value []byte) bool {
			if http.CanonicalHeaderKey(string(name)) == "Host" {
				return true
			}
			for _, v := range hr.Header.Values(string(name)) {
				if v == string(value) {
					return true
				}
			}
			t.Fatalf("net/http: header %q = %q, want %q", name, hr.Header.Values(string(name)), value)
			return false
		})
	})
}

func cmpDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// FuzzAccept compares AppendAccept with a straightforward crypto/sha1 +
// encoding/base64 version, for keys of any length and any prefix in dst.
func FuzzAccept(f *testing.F) {
	f.Add([]byte(rfcKey), []byte(nil))
	f.Add([]byte("x3JJHMbDL1EzLkh9GBhXDw=="), []byte("Sec-WebSocket-Accept: "))
	f.Add(bytes.Repeat([]byte("k"), maxStackKey+1), []byte{})
	f.Fuzz(func(t *testing.T, key, prefix []byte) {
		got := AppendAccept(bytes.Clone(prefix), key)
		want := string(prefix) + acceptRef(key)
		if string(got) != want {
			t.Fatalf("AppendAccept(%q) = %q, want %q", key, got, want)
		}
	})
}

// FuzzKey compares the Sec-WebSocket-Key check with its definition: the
// value is the one base64 spelling of 16 bytes.
func FuzzKey(f *testing.F) {
	f.Add(rfcKey)
	f.Add("dGhlIHNhbXBsZSBub25jZR==")
	f.Add("dGhlIHNhbXBsZSBub25jZQxx")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, key string) {
		nonce, err := base64.StdEncoding.DecodeString(key)
		want := err == nil && len(nonce) == 16 && base64.StdEncoding.EncodeToString(nonce) == key
		if got := validKey([]byte(key)); got != want {
			t.Fatalf("validKey(%q) = %v, want %v", key, got, want)
		}
	})
}

package upgrade

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// acceptRef is the straightforward Sec-WebSocket-Accept computation.
func acceptRef(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestAppendAccept(t *testing.T) {
	t.Parallel()
	// RFC 6455 §1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" gives
	// "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
	if got := string(AppendAccept(nil, []byte(rfcKey))); got != rfcAccept {
		t.Fatalf("AppendAccept(%q) = %q, want %q", rfcKey, got, rfcAccept)
	}
	if got := string(AppendAccept([]byte("x:"), []byte(rfcKey))); got != "x:"+rfcAccept {
		t.Fatalf("AppendAccept does not append: %q", got)
	}
	for _, n := range []int{0, 1, 24, maxStackKey - 1, maxStackKey, maxStackKey + 1, 200} {
		key := bytes.Repeat([]byte{'k'}, n)
		if got, want := string(AppendAccept(nil, key)), acceptRef(key); got != want {
			t.Errorf("key of %d bytes: %q, want %q", n, got, want)
		}
	}
}

func TestAppendResponse(t *testing.T) {
	t.Parallel()
	// RFC 6455 §1.2, the server's handshake for the sample request.
	want := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
		"Sec-WebSocket-Protocol: chat\r\n" +
		"\r\n"
	r := mustParse(t, rfcSample)
	got := string(AppendResponse(nil, r.Key(), &Response{Protocol: r.Protocol([]string{"chat"})}))
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	for _, c := range []struct {
		name string
		resp *Response
		want string
	}{
		{"nil", nil, ""},
		{"empty", &Response{}, ""},
		{"extensions", &Response{Extensions: []byte("permessage-deflate; server_no_context_takeover")},
			"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"},
		{"all", &Response{Protocol: "v2", Extensions: []byte("x"), Header: []byte("X-A: 1\r\nX-B: 2\r\n")},
			"Sec-WebSocket-Protocol: v2\r\nSec-WebSocket-Extensions: x\r\nX-A: 1\r\nX-B: 2\r\n"},
		{"header without final CRLF", &Response{Header: []byte("X-A: 1")}, "X-A: 1\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := string(AppendResponse([]byte("prev"), []byte(rfcKey), c.resp))
			want := "prevHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + rfcAccept + "\r\n" + c.want + "\r\n"
			if got != want {
				t.Fatalf("got\n%q\nwant\n%q", got, want)
			}
			// net/http must read it as a 101 with the same headers.
			res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got[4:])), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 101 || res.Header.Get("Sec-WebSocket-Accept") != rfcAccept ||
				res.Header.Get("Upgrade") != "websocket" || res.Header.Get("Connection") != "Upgrade" {
				t.Fatalf("net/http read %d %v", res.StatusCode, res.Header)
			}
		})
	}
}

// allSentinels are every exported sentinel.
var allSentinels = []error{
	ErrMalformed, ErrTarget, ErrHeaderField, ErrBody, ErrMethod, ErrHTTPVersion, ErrHost, ErrUpgrade,
	ErrConnection, ErrKey, ErrVersion, ErrVersionMissing, ErrHeaderTooLarge, ErrTooManyHeaders,
	ErrRequestLineTooLong, ErrTimeout, ErrTooManyConns, ErrOrigin, ErrUnauthorized, ErrForbidden, ErrInternal,
}

func TestSentinels(t *testing.T) {
	t.Parallel()
	want := map[error]int{
		ErrMalformed: 400, ErrTarget: 400, ErrHeaderField: 400, ErrBody: 400, ErrMethod: 405,
		ErrHTTPVersion: 505, ErrHost: 400, ErrUpgrade: 400, ErrConnection: 400, ErrKey: 400,
		ErrVersion: 426, ErrVersionMissing: 400, ErrHeaderTooLarge: 431, ErrTooManyHeaders: 431,
		ErrRequestLineTooLong: 414, ErrTimeout: 408, ErrTooManyConns: 503, ErrOrigin: 403,
		ErrUnauthorized: 401, ErrForbidden: 403, ErrInternal: 500,
	}
	if len(want) != len(allSentinels) {
		t.Fatal("sentinels are not distinct")
	}
	for _, err := range allSentinels {
		e, ok := err.(RejectError)
		if !ok {
			t.Fatalf("%v is a %T, not a RejectError", err, err)
		}
		if e.Status != want[err] {
			t.Errorf("%q: status %d, want %d", e.Reason, e.Status, want[err])
		}
		if StatusText(e.Status) == "" {
			t.Errorf("no reason phrase for %d", e.Status)
		}
		if !strings.HasPrefix(e.Error(), "upgrade: ") || len(e.Error()) < 15 {
			t.Errorf("Error() = %q", e.Error())
		}
	}
	if h := ErrVersion.(RejectError).Header; h != "Sec-WebSocket-Version: 13\r\n" {
		t.Errorf("ErrVersion.Header = %q", h)
	}
}

func TestAsReject(t *testing.T) {
	t.Parallel()
	custom := RejectError{Status: 429, Reason: "slow down", Header: "Retry-After: 5\r\n"}
	for _, c := range []struct {
		name string
		err  error
		want RejectError
		ok   bool
	}{
		{"sentinel", ErrKey, ErrKey.(RejectError), true},
		{"value", ErrKey.(RejectError), ErrKey.(RejectError), true},
		{"wrapped", fmt.Errorf("accept: %w", ErrOrigin), ErrOrigin.(RejectError), true},
		{"pointer", &custom, custom, true},
		{"wrapped pointer", fmt.Errorf("hook: %w", &custom), custom, true},
		{"nil pointer", (*RejectError)(nil), RejectError{}, false},
		{"other", io.EOF, RejectError{}, false},
		{"nil", nil, RejectError{}, false},
	} {
		got, ok := AsReject(c.err)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %#v, %v", c.name, got, ok)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrHost), ErrHost) {
		t.Error("errors.Is does not see the sentinel through the boxed copy")
	}
}

func TestAppendReject(t *testing.T) {
	t.Parallel()
	got := string(AppendReject([]byte("prev"), ErrVersion.(RejectError)))
	want := "prevHTTP/1.1 426 Upgrade Required\r\n" +
		"Connection: Upgrade, close\r\n" +
		"Upgrade: websocket\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: 43\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"\r\n" +
		"unsupported WebSocket version: 13 required\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}

	cases := []RejectError{
		{Status: 0, Reason: "no status"},
		{Status: 101, Reason: "not a rejection"},
		{Status: 600, Reason: "out of range"},
		{Status: 599, Reason: "unknown code"},
		{Status: 204, Reason: "no body allowed"},
		{Status: 302, Header: "Location: /login\r\n"},
		{Status: 429, Reason: "slow down", Header: "Retry-After: 5"},
		{Status: 403, Reason: "multi\r\nline\x00 reason"},
	}
	for _, err := range allSentinels {
		cases = append(cases, err.(RejectError))
	}
	for _, e := range cases {
		t.Run(fmt.Sprint(e.Status, " ", e.Reason), func(t *testing.T) {
			t.Parallel()
			raw := AppendReject(nil, e)
			res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("net/http cannot read %q: %v", raw, err)
			}
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			status := e.Status
			if status < 200 || status > 599 {
				status = 500
			}
			if res.StatusCode != status || !res.Close {
				t.Fatalf("status %d close %v, want %d and close", res.StatusCode, res.Close, status)
			}
			if !strings.HasPrefix(string(raw), fmt.Sprintf("HTTP/1.1 %d %s\r\n", status, StatusText(status))) {
				t.Fatalf("status line of %q", raw)
			}
			wantBody := e.Reason + "\n"
			if status == 204 {
				wantBody = ""
			}
			if string(body) != wantBody {
				t.Fatalf("body %q, want %q", body, wantBody)
			}
			if rest, _ := io.ReadAll(io.MultiReader(res.Body)); len(rest) != 0 {
				t.Fatalf("bytes after the body: %q", rest)
			}
			for line := range strings.SplitSeq(strings.TrimSuffix(e.Header, "\r\n"), "\r\n") {
				if line == "" {
					continue
				}
				name, value, _ := strings.Cut(line, ": ")
				if res.Header.Get(name) != value {
					t.Fatalf("header %s = %q, want %q", name, res.Header.Get(name), value)
				}
			}
			if status == 426 && (res.Header.Get("Upgrade") != "websocket" || !strings.Contains(string(raw), "\r\nConnection: Upgrade, close\r\n")) {
				t.Fatalf("426 without Upgrade: %v", res.Header)
			}
		})
	}
}

func TestStatusText(t *testing.T) {
	t.Parallel()
	// net/http still uses the RFC 7231 names of these two.
	renamed := map[int]string{413: "Content Too Large", 414: "URI Too Long"}
	for code := 100; code < 600; code++ {
		got, want := StatusText(code), http.StatusText(code)
		if r, ok := renamed[code]; ok {
			want = r
		}
		if got != "" && got != want {
			t.Errorf("StatusText(%d) = %q, net/http says %q", code, got, want)
		}
	}
	if StatusText(99) != "" || StatusText(600) != "" {
		t.Error("text for an invalid code")
	}
}

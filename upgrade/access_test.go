package upgrade

import (
	"strings"
	"testing"
)

// mustParse parses in (checking one shot against chunked feeding) and
// returns the Request, bound to a buffer holding in plus a frame.
func mustParse(t *testing.T, in string) *Request {
	t.Helper()
	checkSplits(t, nil, []byte(in+trailer), 7)
	buf := []byte(in + trailer)
	r := new(Request)
	r.Reset(nil)
	n, err := r.Parse(buf)
	if err != nil || n != len(in) {
		t.Fatalf("Parse: n=%d err=%v, want n=%d", n, err, len(in))
	}
	return r
}

// str shows nil apart from empty.
func str(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return "\"" + string(b) + "\""
}

func TestAccessorsRFCSample(t *testing.T) {
	t.Parallel()
	r := mustParse(t, rfcSample)
	for _, c := range []struct{ name, got, want string }{
		{"Method", str(r.Method()), `"GET"`},
		{"Target", str(r.Target()), `"/chat"`},
		{"Path", str(r.Path()), `"/chat"`},
		{"Query", str(r.Query()), `<nil>`},
		{"Host", str(r.Host()), `"server.example.com"`},
		{"Origin", str(r.Origin()), `"http://example.com"`},
		{"Key", str(r.Key()), `"` + rfcKey + `"`},
		{"Header(sec-websocket-protocol)", str(r.Header("sec-websocket-protocol")), `"chat, superchat"`},
		{"Header(HOST)", str(r.Header("HOST")), `"server.example.com"`},
		{"Header(Cookie)", str(r.Header("Cookie")), `<nil>`},
		{"Cookie(a)", str(r.Cookie("a")), `<nil>`},
		{"Protocol(chat)", r.Protocol([]string{"chat"}), "chat"},
		{"Protocol(superchat, chat)", r.Protocol([]string{"superchat", "chat"}), "chat"}, // the client's order wins
		{"Protocol(superchat)", r.Protocol([]string{"superchat"}), "superchat"},
		{"Protocol(Chat)", r.Protocol([]string{"Chat"}), ""}, // case-sensitive
		{"Protocol(nil)", r.Protocol(nil), ""},
		{"AppendExtensions", str(r.AppendExtensions(nil)), `<nil>`},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	var names []string
	r.VisitHeaders(func(name, value []byte) bool {
		names = append(names, string(name)+"="+string(value))
		return true
	})
	want := "Host=server.example.com|Upgrade=websocket|Connection=Upgrade|Sec-WebSocket-Key=" + rfcKey +
		"|Origin=http://example.com|Sec-WebSocket-Protocol=chat, superchat|Sec-WebSocket-Version=13"
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("VisitHeaders:\n got %s\nwant %s", got, want)
	}
	names = names[:0]
	r.VisitHeaders(func(name, value []byte) bool {
		names = append(names, string(name))
		return len(names) < 2
	})
	if len(names) != 2 {
		t.Errorf("VisitHeaders did not stop when fn returned false: %v", names)
	}
}

func TestAccessorsTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		target, path, query, host string
	}{
		{"/", `"/"`, `<nil>`, `"h.example"`},
		{"/chat?", `"/chat"`, `""`, `"h.example"`},
		{"/chat?room=1&x=%20y", `"/chat"`, `"room=1&x=%20y"`, `"h.example"`},
		{"/a?b?c", `"/a"`, `"b?c"`, `"h.example"`},
		{"/%2Fx", `"/%2Fx"`, `<nil>`, `"h.example"`},
		{"http://abs.example/chat?q", `"/chat"`, `"q"`, `"abs.example"`},
		{"https://abs.example:8443", `""`, `<nil>`, `"abs.example:8443"`},
		{"HTTP://abs.example?q=1", `""`, `"q=1"`, `"abs.example"`},
		{"http://[::1]:80/x", `"/x"`, `<nil>`, `"[::1]:80"`},
	} {
		t.Run(c.target, func(t *testing.T) {
			t.Parallel()
			r := mustParse(t, build("GET "+c.target+" HTTP/1.1", "Host: h.example", "Upgrade: websocket",
				"Connection: Upgrade", "Sec-WebSocket-Key: "+rfcKey, "Sec-WebSocket-Version: 13"))
			if got := string(r.Target()); got != c.target {
				t.Errorf("Target = %q", got)
			}
			if got := str(r.Path()); got != c.path {
				t.Errorf("Path = %s, want %s", got, c.path)
			}
			if got := str(r.Query()); got != c.query {
				t.Errorf("Query = %s, want %s", got, c.query)
			}
			if got := str(r.Host()); got != c.host {
				t.Errorf("Host = %s, want %s", got, c.host)
			}
			if got := str(r.Header("host")); got != `"h.example"` {
				t.Errorf("Header(host) = %s", got)
			}
		})
	}
}

func TestAccessorsHeaders(t *testing.T) {
	t.Parallel()
	r := mustParse(t, valid(
		"X-Empty:",
		"X-Spaces: \t a  b \t",
		"x-dup: first",
		"X-Dup: second",
		"Origin: https://one.example",
		"Origin: https://two.example",
		"Sec-WebSocket-Protocol:  , v1.chat ,,",
		"Sec-WebSocket-Protocol: v2.chat, v3",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
		"Sec-WebSocket-Extensions:",
		"sec-websocket-extensions: x-foo,  x-bar ",
		`Cookie: a=1; b="two"; c=; e ; =x; f=g=h`,
		"Cookie: d=4;a=shadowed; session = s1 ",
	))
	for _, c := range []struct{ name, got, want string }{
		{"Header(X-Empty)", str(r.Header("X-Empty")), `""`},
		{"Header(x-spaces)", str(r.Header("x-spaces")), `"a  b"`},
		{"Header(X-DUP)", str(r.Header("X-DUP")), `"first"`},
		{"Header(X-Du)", str(r.Header("X-Du")), `<nil>`},
		{"Header()", str(r.Header("")), `<nil>`},
		{"Origin", str(r.Origin()), `"https://one.example"`},
		{"Protocol(v3, v2.chat)", r.Protocol([]string{"v3", "v2.chat"}), "v2.chat"},
		{"Protocol(v3, v1.chat)", r.Protocol([]string{"v3", "v1.chat"}), "v1.chat"},
		{"Protocol(v3)", r.Protocol([]string{"v3"}), "v3"},
		{"Protocol(v4, empty)", r.Protocol([]string{"v4", ""}), ""},
		{"AppendExtensions", string(r.AppendExtensions([]byte("prefix:"))), "prefix:permessage-deflate; client_max_window_bits, x-foo,  x-bar"},
		{"Cookie(a)", str(r.Cookie("a")), `"1"`},
		{"Cookie(b)", str(r.Cookie("b")), `"two"`},
		{"Cookie(c)", str(r.Cookie("c")), `""`},
		{"Cookie(d)", str(r.Cookie("d")), `"4"`},
		{"Cookie(e)", str(r.Cookie("e")), `<nil>`},
		{"Cookie(f)", str(r.Cookie("f")), `"g=h"`},
		{"Cookie(session)", str(r.Cookie("session")), `"s1"`},
		{"Cookie(A)", str(r.Cookie("A")), `<nil>`},
		{"Cookie()", str(r.Cookie("")), `<nil>`},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// TestAccessorsCapped checks that appending to a returned slice cannot
// overwrite the request bytes that follow it.
func TestAccessorsCapped(t *testing.T) {
	t.Parallel()
	r := mustParse(t, chromeRequest)
	for name, b := range map[string][]byte{
		"Method": r.Method(), "Target": r.Target(), "Path": r.Path(), "Query": r.Query(),
		"Host": r.Host(), "Origin": r.Origin(), "Key": r.Key(), "Header": r.Header("user-agent"),
		"Cookie": r.Cookie("theme"),
	} {
		if b == nil || cap(b) != len(b) {
			t.Errorf("%s: len %d cap %d", name, len(b), cap(b))
		}
	}
	r.VisitHeaders(func(name, value []byte) bool {
		if cap(name) != len(name) || cap(value) != len(value) {
			t.Errorf("VisitHeaders %s: not capped", name)
		}
		return true
	})
}

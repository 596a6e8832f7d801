package upgrade

import (
	"strings"
	"testing"
)

// trustPrefix trusts every For value that starts with "10." or "[fd00:".
func trustPrefix(node []byte) bool {
	s := string(node)
	return strings.HasPrefix(s, "10.") || strings.HasPrefix(s, "[fd00:")
}

func TestForwarded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers []string
		trusted func([]byte) bool
		ok      bool
		want    Hop
	}{
		{name: "none", headers: []string{"Origin: http://a"}, trusted: trustPrefix},
		{
			name:    "x-forwarded-for: the nearest untrusted entry",
			headers: []string{"X-Forwarded-For: 6.6.6.6, 192.0.2.7, 10.0.0.2", "X-Forwarded-Proto: https", "X-Forwarded-Host: app.example.com"},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("192.0.2.7"), Host: []byte("app.example.com"), Proto: []byte("https")},
		},
		{
			name:    "x-forwarded-for: lines form one list, empty elements skipped",
			headers: []string{"X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 192.0.2.7 ,, 10.0.0.2,", "X-Forwarded-For: 10.0.0.3"},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("192.0.2.7")},
		},
		{
			name:    "x-forwarded-for: all trusted gives the first entry",
			headers: []string{"X-Forwarded-For: 10.1.1.1, 10.0.0.2"},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("10.1.1.1")},
		},
		{
			name:    "x-forwarded-host and proto: the last entry",
			headers: []string{"X-Forwarded-Host: evil.example, app.example.com:8443", "X-Forwarded-Proto: http", "X-Forwarded-Proto: https"},
			trusted: trustPrefix, ok: true,
			want: Hop{Host: []byte("app.example.com:8443"), Proto: []byte("https")},
		},
		{
			name: "forwarded: element parameters, quotes removed",
			headers: []string{
				`Forwarded: for=6.6.6.6;host=evil`,
				`forwarded: For="[2001:db8:cafe::17]:4711";Proto=https;host="app.example.com:443", for=10.0.0.2;proto=http`,
			},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("[2001:db8:cafe::17]:4711"), Host: []byte("app.example.com:443"), Proto: []byte("https")},
		},
		{
			name:    "forwarded wins over x-forwarded-*",
			headers: []string{"X-Forwarded-For: 192.0.2.99", "X-Forwarded-Host: other", `Forwarded: for=192.0.2.43`},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("192.0.2.43")},
		},
		{
			name:    "forwarded: a comma and a semicolon inside quotes do not split",
			headers: []string{`Forwarded: for="_a,b;c";host="h\"x", for=[fd00::1]`},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("_a,b;c"), Host: []byte(`h\"x`)},
		},
		{
			name:    "forwarded: obfuscated and unknown nodes are untrusted hops",
			headers: []string{`Forwarded: for=192.0.2.1, for=unknown, for=10.0.0.9`},
			trusted: trustPrefix, ok: true,
			want: Hop{For: []byte("unknown")},
		},
		{
			name:    "forwarded: an element without for",
			headers: []string{`Forwarded: proto=https;by=10.0.0.1;junk;=x`},
			trusted: trustPrefix, ok: true,
			want: Hop{Proto: []byte("https")},
		},
		{
			name:    "nothing trusted: the nearest element",
			headers: []string{"X-Forwarded-For: 192.0.2.1, 10.0.0.2"},
			trusted: func([]byte) bool { return false }, ok: true,
			want: Hop{For: []byte("10.0.0.2")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(valid(tc.headers...))
			var r Request
			if _, err := r.Parse(in); err != nil {
				t.Fatal(err)
			}
			hop, ok := r.Forwarded(tc.trusted)
			if ok != tc.ok || !sameHop(hop, tc.want) {
				t.Errorf("Forwarded = %s, %v; want %s, %v", fmtHop(hop), ok, fmtHop(tc.want), tc.ok)
			}
			for _, b := range [][]byte{hop.For, hop.Host, hop.Proto} {
				if !within(in, b) || cap(b) != len(b) {
					t.Errorf("%q is not a capped subslice of the request", b)
				}
			}
		})
	}
}

func TestForwardedBeforeParse(t *testing.T) {
	t.Parallel()
	var r Request
	if _, err := r.Parse([]byte("GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n")); err != nil {
		t.Fatal(err)
	}
	if hop, ok := r.Forwarded(trustPrefix); ok || hop.For != nil {
		t.Errorf("incomplete request: Forwarded = %s, %v; want nothing", fmtHop(hop), ok)
	}
}

func sameHop(a, b Hop) bool {
	return string(a.For) == string(b.For) && string(a.Host) == string(b.Host) && string(a.Proto) == string(b.Proto) &&
		(a.Host == nil) == (b.Host == nil) && (a.Proto == nil) == (b.Proto == nil)
}

func fmtHop(h Hop) string {
	q := func(b []byte) string {
		if b == nil {
			return "nil"
		}
		return `"` + string(b) + `"`
	}
	return "{For " + q(h.For) + " Host " + q(h.Host) + " Proto " + q(h.Proto) + "}"
}

// FuzzForwarded checks that Forwarded never panics on what Parse accepts,
// returns subslices of the request, and walks hops from the nearest: with
// nothing trusted it returns the last For it could have returned, and
// every For it rejects is one trusted was asked about.
func FuzzForwarded(f *testing.F) {
	f.Add("6.6.6.6, 192.0.2.7, 10.0.0.2", `for=1.2.3.4;proto=https, for="[fd00::1]:80"`, "a, b")
	f.Add(`"a,b", c`, `for="\\";host="x\"y;z"`, ",,")
	f.Add("", `;;=;for`, "")
	f.Fuzz(func(t *testing.T, xff, fwd, xfh string) {
		var hs []string
		for _, h := range []struct{ name, v string }{{"X-Forwarded-For", xff}, {"Forwarded", fwd}, {"X-Forwarded-Host", xfh}} {
			if h.v != "" {
				hs = append(hs, h.name+": "+h.v)
			}
		}
		in := []byte(valid(hs...))
		var r Request
		if n, err := r.Parse(in); n == 0 || err != nil {
			return
		}
		var asked [][]byte
		hop, ok := r.Forwarded(func(node []byte) bool {
			asked = append(asked, node)
			return trustPrefix(node)
		})
		if ok != (len(hs) > 0) {
			t.Fatalf("ok = %v with %d forwarding lines", ok, len(hs))
		}
		for _, b := range [][]byte{hop.For, hop.Host, hop.Proto} {
			if !within(in, b) {
				t.Fatalf("%q is not within the request", b)
			}
		}
		for i, a := range asked {
			if !within(in, a) {
				t.Fatalf("trusted got %q, not within the request", a)
			}
			if i < len(asked)-1 && !trustPrefix(a) {
				t.Fatalf("the walk went on after the untrusted %q", a)
			}
		}
		if len(asked) > 0 && !trustPrefix(asked[len(asked)-1]) && string(hop.For) != string(asked[len(asked)-1]) {
			t.Fatalf("returned %q; the untrusted hop was %q", hop.For, asked[len(asked)-1])
		}
		none, _ := r.Forwarded(func([]byte) bool { return false })
		if len(asked) > 0 && string(none.For) != string(asked[0]) {
			t.Fatalf("nothing trusted: returned %q; the nearest hop is %q", none.For, asked[0])
		}
	})
}

//go:build !windows

package loop

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// addrHandler reports the RemoteAddr of every connection it opens.
type addrHandler struct {
	nopHandler
	addrs chan string
}

func (h addrHandler) OnOpen(c *Conn) { h.addrs <- c.RemoteAddr().String() }

// proxiedRequest is upgradeRequest as a proxy forwards it: Host is the
// upstream's, the rest is in extra header lines.
func proxiedRequest(extra ...string) string {
	req := strings.Replace(upgradeRequest, "Host: 127.0.0.1", "Host: 127.0.0.1:9000", 1)
	return strings.Replace(req, "\r\n\r\n", "\r\n"+strings.Join(extra, "\r\n")+"\r\n\r\n", 1)
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	start := func(trusted ...string) (string, chan string) {
		h := addrHandler{addrs: make(chan string, 1)}
		var o Options
		for _, p := range trusted {
			o.TrustedProxies = append(o.TrustedProxies, netip.MustParsePrefix(p))
		}
		_, addr := startServer(t, h, o, nil)
		return addr, h.addrs
	}
	// The test's client connects from 127.0.0.1: a proxy for the first
	// server, a stranger for the second.
	proxied, proxiedAddrs := start("127.0.0.0/8", "10.0.0.0/8")
	direct, directAddrs := start("10.0.0.0/8")

	for _, tc := range []struct {
		name   string
		server string
		addrs  chan string
		lines  []string
		want   string // the remote address, or the status line's start
	}{
		{"x-forwarded-for: the nearest untrusted hop", proxied, proxiedAddrs,
			[]string{"X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.2.3"}, "198.51.100.7:0"},
		{"forwarded: address and port", proxied, proxiedAddrs,
			[]string{`Forwarded: for="[2001:db8::1]:4711";proto=http`}, "[2001:db8::1]:4711"},
		{"forwarded: ipv4 with port", proxied, proxiedAddrs,
			[]string{`Forwarded: for="192.0.2.60:443"`}, "192.0.2.60:443"},
		{"a hop that is not an address keeps the proxy's", proxied, proxiedAddrs,
			[]string{"X-Forwarded-For: unknown"}, "127.0.0.1:"},
		{"an untrusted peer's headers are ignored", direct, directAddrs,
			[]string{"X-Forwarded-For: 198.51.100.7"}, "127.0.0.1:"},
		{"origin: the forwarded host and proto", proxied, proxiedAddrs,
			[]string{"Origin: https://app.example", "X-Forwarded-Host: app.example", "X-Forwarded-Proto: https", "X-Forwarded-For: 192.0.2.1"}, "192.0.2.1:0"},
		{"origin: forwarded host= and proto=", proxied, proxiedAddrs,
			[]string{"Origin: http://app.example:8080", `Forwarded: for=192.0.2.2;host="app.example:8080";proto=http`}, "192.0.2.2:0"},
		{"origin: the proxy's Host alone is refused", proxied, proxiedAddrs,
			[]string{"Origin: https://app.example"}, "HTTP/1.1 403 "},
		{"origin: another scheme than the forwarded proto", proxied, proxiedAddrs,
			[]string{"Origin: http://app.example", "X-Forwarded-Host: app.example", "X-Forwarded-Proto: https"}, "HTTP/1.1 403 "},
		{"origin: an untrusted peer's X-Forwarded-Host is ignored", direct, directAddrs,
			[]string{"Origin: https://app.example", "X-Forwarded-Host: app.example"}, "HTTP/1.1 403 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := admTryUpgradeWith(tc.server, proxiedRequest(tc.lines...))
			if strings.HasPrefix(tc.want, "HTTP/") {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("upgrade: %v; want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case got := <-tc.addrs:
				want := tc.want
				if strings.HasSuffix(want, ":") { // the peer's own port
					want += portOf(c.LocalAddr())
				}
				if got != want {
					t.Errorf("RemoteAddr = %s; want %s", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no OnOpen")
			}
		})
	}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

func TestParseNode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":          "192.0.2.1:0",
		"192.0.2.1:80":       "192.0.2.1:80",
		"2001:db8::1":        "[2001:db8::1]:0",
		"[2001:db8::1]":      "[2001:db8::1]:0",
		"[2001:db8::1]:8080": "[2001:db8::1]:8080",
		"::ffff:192.0.2.1":   "192.0.2.1:0",
		"unknown":            "",
		"_hidden":            "",
		"":                   "",
		"[2001:db8::1":       "",
		"[2001:db8::1]x":     "",
		"192.0.2.1:99999":    "",
		"192.0.2.1:":         "",
		"[fe80::1%eth0]":     "",
		"01.2.3.4":           "",
	} {
		ap, ok := parseNode([]byte(in))
		got := ""
		if ok {
			got = ap.String()
		}
		if got != want {
			t.Errorf("parseNode(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestTrustedProxiesInvalid(t *testing.T) {
	t.Parallel()
	if _, err := NewServer(nopHandler{}, Options{TrustedProxies: []netip.Prefix{{}}}); err == nil {
		t.Error("NewServer accepted an invalid prefix")
	}
}

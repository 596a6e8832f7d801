package wsgate

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.7", "::1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(got, want) {
		t.Errorf("ParseTrustedProxies = %v; want %v", got, want)
	}
	c := gwConfig()
	c.Client.TrustedProxies = []string{"10.0.0.0/8", "nginx"}
	if _, err := NewNode(c, NodeOptions{}); err == nil || !strings.Contains(err.Error(), "client.trusted_proxies") || !strings.Contains(err.Error(), `"nginx"`) {
		t.Errorf("a bad trusted proxy: %v; want an error naming client.trusted_proxies and the value", err)
	}
}

// TestGatewayPingsOff: a negative client.ping_interval turns the pings and
// the pong check off; a connected client that never pongs stays (a
// wrapped interval used to close it with 3012 within a second or so).
func TestGatewayPingsOff(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.PingInterval = Duration(-time.Second)
	cfg.Client.PongTimeout = Duration(time.Second)
	n := startNode(t, cfg)
	g := dialNode(t, n.addr, false)
	if res := g.connect(token(t, jwt.MapClaims{"sub": "u"})); res.Ping != 0 {
		t.Fatalf("connect %+v: want no ping interval", res)
	}
	g.c.SetReadDeadline(time.Now().Add(3 * time.Second)) // three sweeps
	r, err := g.next()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %+v, %v; want nothing until the deadline", r, err)
	}
}

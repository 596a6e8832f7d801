package wsgate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
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

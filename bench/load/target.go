package load

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Target is a parsed ws:// URL.
type Target struct {
	URL      string // as given
	Host     string // the Host header: host[:port] as in the URL
	Addr     string // the address to dial: ip:port
	Path     string // request-target: path and query
	Loopback bool   // Addr is a loopback address of this machine
}

// ParseTarget parses a ws:// URL and resolves its host. wss:// is not
// supported: the generator speaks plain TCP only.
func ParseTarget(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("load: bad url: %w", err)
	}
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		return nil, errors.New("load: wss:// is not supported (no TLS); use ws://")
	default:
		return nil, fmt.Errorf("load: url scheme %q: want ws://host:port/path", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("load: url has no host")
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("load: bad port %q", port)
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("load: resolve %s: %v", u.Hostname(), err)
	}
	ip := ips[0]
	for _, x := range ips { // prefer IPv4
		if x.To4() != nil {
			ip = x
			break
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return &Target{
		URL:      raw,
		Host:     u.Host,
		Addr:     net.JoinHostPort(ip.String(), port),
		Path:     path,
		Loopback: ip.IsLoopback(),
	}, nil
}

// DefaultSources returns n local source addresses for a loopback IPv4
// target, 127.0.0.2 … 127.0.0.(n+1); each gives the target's port its
// own 28,232 ephemeral ports. It returns nil for other targets.
func DefaultSources(t *Target, n int) []string {
	host, _, _ := net.SplitHostPort(t.Addr)
	ip := net.ParseIP(host)
	if !t.Loopback || ip.To4() == nil || n <= 0 {
		return nil
	}
	n = min(n, 250)
	s := make([]string, n)
	for i := range s {
		s[i] = "127.0.0." + strconv.Itoa(i+2)
	}
	return s
}

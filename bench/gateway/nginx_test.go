package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
)

// wsgate behind Debian's nginx, started by the tests as a process of their
// own (no system service), with the settings README.md documents: nginx's
// defaults (Host $proxy_host, proxy_read_timeout 60s) plus Upgrade,
// Connection and X-Forwarded-*. nginx connects to wsgate from 127.0.0.3,
// the only address wsgate trusts; the clients connect to nginx from other
// 127.0.0.x addresses, so the client address wsgate logs tells which one
// it believed.

// nginxUpstreamAddr is the address nginx connects to wsgate from.
const nginxUpstreamAddr = "127.0.0.3"

// nginxPath returns Debian's nginx, skipping the test when it is missing
// (failing in CI).
func nginxPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/sbin/nginx", "nginx"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if inCI() {
		t.Fatal("nginx is not installed (CI=true: run .ci/deps.sh)")
	}
	t.Skip("nginx is not installed")
	return ""
}

var wsgateBin struct {
	once sync.Once
	path string
	err  error
}

// wsgateBinary builds cmd/wsgate once for the tests of this file.
func wsgateBinary(t *testing.T) string {
	t.Helper()
	wsgateBin.once.Do(func() { wsgateBin.path, wsgateBin.err = LookBinary(Wsgate, serverDir) })
	if wsgateBin.err != nil {
		if inCI() {
			t.Fatal(wsgateBin.err)
		}
		t.Skip(wsgateBin.err)
	}
	return wsgateBin.path
}

// nginxConf is the configuration the tests run nginx with. The WebSocket
// location has the settings of README.md; timeouts are nginx's defaults.
const nginxConf = `daemon off;
master_process off;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log info;
events { worker_connections 256; }
http {
    access_log {{DIR}}/access.log;
    client_body_temp_path {{DIR}}/tmp;
    proxy_temp_path {{DIR}}/tmp;
    fastcgi_temp_path {{DIR}}/tmp;
    uwsgi_temp_path {{DIR}}/tmp;
    scgi_temp_path {{DIR}}/tmp;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen {{HTTP}};
        listen {{HTTPS}} ssl;
        ssl_certificate {{DIR}}/cert.pem;
        ssl_certificate_key {{DIR}}/key.pem;

        location = /connection/websocket {
            proxy_pass http://{{WSGATE}};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_bind {{UPSTREAM}};
        }
        location / {
            proxy_pass http://{{PAGE}};
        }
    }
}
`

// behindNginx is wsgate behind nginx, and the page server nginx serves
// everything but the WebSocket from.
type behindNginx struct {
	tg      *Target
	http    string // nginx, plain: host:port
	https   string // nginx, TLS
	roots   *x509.CertPool
	results chan []byte // what the page posted to /result
	dir     string
}

// startBehindNginx starts wsgate (trusting nginx's upstream address), a
// page server and nginx with a certificate made for the test.
func startBehindNginx(t *testing.T) *behindNginx {
	t.Helper()
	ngx := nginxPath(t)
	bin := wsgateBinary(t)
	dir := t.TempDir()
	cfg := DefaultConfig(100)
	cfg.AllowedOrigins = nil // the same-origin check is under test
	tg, err := Start(Wsgate, bin, cfg, dir, "-v", "-admin", "", "-trusted-proxies", nginxUpstreamAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	b := &behindNginx{tg: tg, results: make(chan []byte, 1), dir: dir}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveFile("proxy_page.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /sdk/json.js", serveFile("node_modules/centrifuge/dist/centrifuge.js", "text/javascript"))
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case b.results <- body:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)

	b.roots = writeCert(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	ws, _ := url.Parse(tg.WS)
	for range 3 { // another process may take a port picked free
		b.http, b.https = mustFreeAddr(t), mustFreeAddr(t)
		conf := strings.NewReplacer("{{DIR}}", dir, "{{HTTP}}", b.http, "{{HTTPS}}", b.https,
			"{{WSGATE}}", ws.Host, "{{UPSTREAM}}", nginxUpstreamAddr,
			"{{PAGE}}", strings.TrimPrefix(page.URL, "http://")).Replace(nginxConf)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err = runNginx(t, ngx, dir, b.http, b.https); err == nil {
			return b
		}
	}
	t.Fatal(err)
	return nil
}

// runNginx starts nginx on dir/nginx.conf and waits until it accepts on
// both addresses; it is killed when the test ends.
func runNginx(t *testing.T, ngx, dir string, addrs ...string) error {
	out := &tailBuffer{max: 16 << 10}
	// -e: the error log before the configuration is read (the default is
	// under /var/log); -p: the prefix for relative paths.
	cmd := exec.Command(ngx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				return fmt.Errorf("nginx exited at start:\n%s%s", out, log)
			default:
			}
			if time.Now().After(deadline) {
				stop()
				return fmt.Errorf("nginx not accepting on %s after 10 s: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(stop)
	return nil
}

func mustFreeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, valid for an hour, to dir/cert.pem and dir/key.pem, and
// returns a pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "wsgate test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// goClientVia connects a centrifuge-go client (JSON) to wsURL from the
// local address ip.
func goClientVia(t *testing.T, b *behindNginx, wsURL, ip string, cfg centrifuge.Config) *goClient {
	t.Helper()
	tg := *b.tg
	tg.WS = wsURL
	cfg.Token = b.tg.Token(Claims{Sub: "proxied"})
	g := newGoClient(t, &tg, "json", cfg)
	g.gate.local = &net.TCPAddr{IP: net.ParseIP(ip)}
	g.connect(t)
	return g
}

// clientLogged reports whether wsgate logged that a trusted proxy
// forwarded the client address remote (text or JSON log).
func clientLogged(tg *Target, remote string) bool {
	re := regexp.MustCompile(`client address from a trusted proxy.*remote\W{1,3}` + regexp.QuoteMeta(remote) +
		`\W.*proxy\W{1,3}` + regexp.QuoteMeta(nginxUpstreamAddr) + `:`)
	return re.MatchString(tg.Output())
}

func waitLogged(t *testing.T, tg *Target, remote string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clientLogged(tg, remote) {
		if time.Now().After(deadline) {
			t.Fatalf("wsgate did not log the client address %s forwarded by %s:\n%s", remote, nginxUpstreamAddr, tg.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNginxRemoteAddr: a client at 127.0.0.5 connects through nginx
// (upstream address 127.0.0.3): wsgate takes 127.0.0.5 from nginx's
// X-Forwarded-For. The same client connecting directly with a forged
// X-Forwarded-For is not believed.
func TestNginxRemoteAddr(t *testing.T) {
	t.Parallel()
	b := startBehindNginx(t)
	goClientVia(t, b, "ws://"+b.http+"/connection/websocket", "127.0.0.5", centrifuge.Config{})
	waitLogged(t, b.tg, "127.0.0.5:0")

	forged := centrifuge.Config{Header: http.Header{"X-Forwarded-For": {"198.51.100.1"}}}
	goClientVia(t, b, b.tg.WS, "127.0.0.5", forged)
	if strings.Contains(b.tg.Output(), "198.51.100.1") {
		t.Errorf("wsgate believed a direct client's X-Forwarded-For:\n%s", b.tg.Output())
	}
}

// TestNginxTLS: nginx terminates TLS with the test's certificate and
// centrifuge-go, trusting it, connects over wss:// and gets a publication.
func TestNginxTLS(t *testing.T) {
	t.Parallel()
	b := startBehindNginx(t)
	// The certificate names 127.0.0.1; the client leaves from 127.0.0.6.
	cfg := centrifuge.Config{TLSConfig: &tls.Config{RootCAs: b.roots, MinVersion: tls.VersionTLS12}}
	g := goClientVia(t, b, "wss://"+b.https+"/connection/websocket", "127.0.0.6", cfg)
	waitLogged(t, b.tg, "127.0.0.6:0")
	ch := channelName("", "tls")
	sub, _ := g.subscribe(t, ch)
	if _, err := b.tg.Publish(context.Background(), ch, json.RawMessage(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, sub.pubs, 1); got[0].Seq != 1 {
		t.Errorf("received %+v; want seq 1", got)
	}
}

// TestNginxIdle: a client that sends no command for 150 s, with nginx's
// default 60 s proxy_read_timeout, stays connected: the gateway's pings
// (client.ping_interval, 25 s by default) and the client's pongs cross
// nginx in both directions. It then still receives a publication. Long:
// it runs in parallel with the other tests of the package, and -short
// skips it.
func TestNginxIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("150 s idle connection (-short)")
	}
	t.Parallel()
	b := startBehindNginx(t)
	g := goClientVia(t, b, "ws://"+b.http+"/connection/websocket", "127.0.0.7", centrifuge.Config{})
	ch := channelName("", "idle")
	sub, _ := g.subscribe(t, ch)
	const idle = 150 * time.Second
	select {
	case e := <-g.disconnected:
		t.Fatalf("disconnected while idle: %d %q", e.Code, e.Reason)
	case e := <-g.connecting:
		t.Fatalf("reconnecting while idle: %d %q", e.Code, e.Reason)
	case <-time.After(idle):
	}
	if _, err := b.tg.Publish(context.Background(), ch, json.RawMessage(`{"seq":7}`)); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, sub.pubs, 1); got[0].Seq != 7 {
		t.Errorf("received %+v after %v idle; want seq 7", got, idle)
	}
	if log, _ := os.ReadFile(filepath.Join(b.dir, "error.log")); strings.Contains(string(log), "timed out") {
		t.Errorf("nginx timed the connection out:\n%s", log)
	}
}

// TestNginxChromium: a page served through nginx, over http:// and over
// https:// (the test's certificate, its error ignored), connects to its own
// origin with centrifuge-js. nginx sends its own upstream address as Host;
// the origin check uses X-Forwarded-Host, so the upgrade gets 101, not
// 403, and wsgate logs the browser's address (127.0.0.1) as the client's.
func TestNginxChromium(t *testing.T) {
	chromium := chromiumPath(t)
	nodePath(t) // the bundle comes from testdata/node_modules
	t.Parallel()
	b := startBehindNginx(t)
	for _, scheme := range []string{"http", "https"} {
		addr := b.http
		if scheme == "https" {
			addr = b.https
		}
		// Chromium connects from 127.0.0.1; its Origin (nginx's port)
		// is not the Host nginx sends (wsgate's port).
		page := scheme + "://" + addr + "/?" + url.Values{"token": {b.tg.Token(Claims{Sub: "browser"})}}.Encode()
		body, out := runChromium(t, chromium, page, b.results, "--ignore-certificate-errors")
		var rep struct {
			URL       string `json:"url"`
			Origin    string `json:"origin"`
			Connected bool   `json:"connected"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("%s: page report: %v\n%s", scheme, err, body)
		}
		if !rep.Connected {
			log, _ := os.ReadFile(filepath.Join(b.dir, "access.log"))
			t.Fatalf("%s: %s from %s did not connect: %s\nnginx access log:\n%s\nchromium:\n%s", scheme, rep.URL, rep.Origin, rep.Error, log, out)
		}
		t.Logf("%s: %s connected from origin %s", scheme, rep.URL, rep.Origin)
	}
	log, _ := os.ReadFile(filepath.Join(b.dir, "access.log"))
	if n := strings.Count(string(log), `"GET /connection/websocket HTTP/1.1" 101 `); n < 2 {
		t.Errorf("nginx logged %d upgrades with 101; want 2:\n%s", n, log)
	}
	if strings.Contains(string(log), `"GET /connection/websocket HTTP/1.1" 403 `) {
		t.Errorf("an upgrade got 403:\n%s", log)
	}
	if !clientLogged(b.tg, "127.0.0.1:0") {
		t.Errorf("wsgate did not log the browser's address:\n%s", b.tg.Output())
	}
}

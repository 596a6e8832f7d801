// Command tlsfront measures what TLS in front of wsgate costs, to decide
// whether wsgate should terminate TLS itself. It runs `wsgate echo` and,
// in turn, three ways to reach it:
//
//   - direct: ws:// to wsgate (no TLS, the baseline);
//   - nginx: wss:// to Debian's nginx terminating TLS and proxying to
//     wsgate (the documented deployment);
//   - gotls: wss:// to a Go crypto/tls terminator (this command run as a
//     child process: two goroutines and a tls.Conn per connection, what
//     wsgate terminating TLS with the standard library would hold per
//     connection if done the usual goroutine way), copying with io.Copy's
//     32 KiB buffers; gotls4k: the same with 4 KiB copy buffers.
//
// For each it opens -idle idle WebSocket connections and reports the RSS
// each process gained per connection, then runs -conns clients that each
// send -msgs echo round trips of -size bytes and reports the CPU time each
// process spent per message (user+system, from /proc). Linux only.
//
//	go run ./cmd/tlsfront -idle 2000 -conns 50 -msgs 2000 -size 64
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/gateway"
	"github.com/wsgate/wsgate/codec"
)

func main() {
	var (
		idle   = flag.Int("idle", 2000, "idle connections held for the memory figure")
		conns  = flag.Int("conns", 50, "concurrent clients for the CPU figure")
		msgs   = flag.Int("msgs", 2000, "echo round trips per client")
		size   = flag.Int("size", 64, "message size in bytes")
		ngx    = flag.String("nginx", "/usr/sbin/nginx", "nginx binary")
		setups = flag.String("setups", "direct,nginx,gotls,gotls4k", "setups to measure, comma-separated")
		child  = flag.String("serve-tls", "", "internal: run the Go TLS terminator LISTEN,UPSTREAM,DIR,BUFSIZE")
	)
	flag.Parse()
	if *child != "" {
		serveTLS(*child)
		return
	}
	log.SetFlags(0)
	defer tlsState(*idle)
	dir, err := os.MkdirTemp("", "tlsfront-*")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	if err := writeCert(dir); err != nil {
		fatal("%v", err)
	}
	defer stopAll()
	bin, err := gateway.LookBinary(gateway.Wsgate, dir)
	if err != nil {
		fatal("%v", err)
	}
	wsAddr := freeAddr()
	ws := startProc(bin, "echo", "-addr", wsAddr, "-admin", "", "-ping", "-1s", "-idle", "-1s")
	defer ws.stop()
	waitAccept(wsAddr)

	fmt.Printf("tlsfront: %d idle connections; %d clients x %d echoes of %d bytes\n\n", *idle, *conns, *msgs, *size)
	fmt.Printf("%-7s %14s %14s %14s %14s %10s\n", "setup", "proxy KiB/conn", "wsgate KiB/conn", "proxy µs/msg", "wsgate µs/msg", "msgs/s")
	for _, name := range strings.Split(*setups, ",") {
		var front *proc
		addr, useTLS := wsAddr, true
		switch name {
		case "direct":
			useTLS = false
		case "nginx":
			addr = freeAddr()
			front = startNginx(*ngx, dir, addr, wsAddr, *idle)
		case "gotls", "gotls4k":
			addr = freeAddr()
			self, _ := os.Executable()
			buf := "32768" // io.Copy's own
			if name == "gotls4k" {
				buf = "4096"
			}
			front = startProc(self, "-serve-tls", addr+","+wsAddr+","+dir+","+buf)
		default:
			fatal("unknown setup %q", name)
		}
		waitAccept(addr)
		r := measure(addr, useTLS, front, ws, *idle, *conns, *msgs, *size)
		fmt.Printf("%-7s %14s %14.1f %14s %14.1f %10.0f\n", name, r.proxyKiB, r.wsKiB, r.proxyCPU, r.wsCPU, r.rate)
		if front != nil {
			front.stop()
		}
	}
}

type result struct {
	proxyKiB, proxyCPU string
	wsKiB, wsCPU, rate float64
}

func measure(addr string, useTLS bool, front, ws *proc, idle, conns, msgs, size int) result {
	var r result
	// Memory: RSS after the idle connections settle, minus RSS before.
	settle := func() { time.Sleep(2 * time.Second) }
	settle()
	front0, ws0 := front.rss(), ws.rss()
	held := make([]net.Conn, 0, idle)
	for range idle {
		c, err := dialWS(addr, useTLS)
		if err != nil {
			fatal("dial %s: %v (after %d)", addr, err, len(held))
		}
		held = append(held, c)
	}
	settle()
	r.wsKiB = float64(ws.rss()-ws0) / 1024 / float64(idle)
	r.proxyKiB = "-"
	if front != nil {
		r.proxyKiB = fmt.Sprintf("%.1f", float64(front.rss()-front0)/1024/float64(idle))
	}
	for _, c := range held {
		c.Close()
	}
	time.Sleep(time.Second)

	// CPU: connections open first, then the echoes, timed by /proc.
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := dialWS(addr, useTLS)
		if err != nil {
			fatal("%v", err)
		}
		cs[i] = c
	}
	fc0, wc0 := front.cpu(), ws.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := echo(c, msgs, size); err != nil {
				fatal("%v", err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := float64(conns * msgs)
	r.wsCPU = float64((ws.cpu() - wc0).Microseconds()) / total
	r.proxyCPU = "-"
	if front != nil {
		r.proxyCPU = fmt.Sprintf("%.1f", float64((front.cpu()-fc0).Microseconds())/total)
	}
	r.rate = total / elapsed.Seconds()
	for _, c := range cs {
		c.Close()
	}
	return r
}

// dialWS opens a WebSocket connection to addr (path /), over TLS if
// useTLS (the test certificate is not verified: it is the test's own).
func dialWS(addr string, useTLS bool) (net.Conn, error) {
	var c net.Conn
	var err error
	if useTLS {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	// Read the response byte by byte up to its blank line, so that no
	// frame is left in a buffer.
	var resp []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(resp), "\r\n\r\n") {
		if _, err := c.Read(b); err != nil {
			c.Close()
			return nil, err
		}
		resp = append(resp, b[0])
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 101 ") {
		c.Close()
		return nil, fmt.Errorf("upgrade answered %q", strings.SplitN(string(resp), "\r\n", 2)[0])
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// echo sends n binary messages of size bytes on c, each after the echo of
// the previous one, and checks every echo.
func echo(c net.Conn, n, size int) error {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	br := bufio.NewReader(c)
	out := make([]byte, 0, size+14)
	in := make([]byte, size)
	for i := range n {
		payload[0] = byte(i)
		key := [4]byte{1, 2, 3, byte(i)}
		out = codec.AppendFrame(out[:0], codec.Header{Fin: true, OpCode: codec.OpBinary, Masked: true, Mask: key}, payload)
		if _, err := c.Write(out); err != nil {
			return err
		}
		var hdr [10]byte
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return err
		}
		hn := 2
		switch hdr[1] & 0x7f {
		case 126:
			hn = 4
		case 127:
			hn = 10
		}
		if _, err := io.ReadFull(br, hdr[2:hn]); err != nil {
			return err
		}
		h, _, err := codec.ParseHeader(hdr[:hn])
		if err != nil || h.OpCode != codec.OpBinary || h.Length != int64(size) {
			return fmt.Errorf("echo %d: header %+v, %v", i, h, err)
		}
		if _, err := io.ReadFull(br, in); err != nil {
			return err
		}
		if string(in) != string(payload) {
			return errors.New("echo differs from the message")
		}
	}
	return nil
}

// proc is a process being measured.
type proc struct{ cmd *exec.Cmd }

func startProc(bin string, args ...string) *proc {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fatal("%v", err)
	}
	p := &proc{cmd}
	procs.Lock()
	procs.list = append(procs.list, p)
	procs.Unlock()
	return p
}

// procs are the processes started, stopped by stopAll.
var procs struct {
	sync.Mutex
	list []*proc
}

// stopAll stops every process started.
func stopAll() {
	procs.Lock()
	defer procs.Unlock()
	for _, p := range procs.list {
		p.stop()
	}
	procs.list = nil
}

// fatal stops the processes started and exits.
func fatal(format string, args ...any) {
	stopAll()
	log.Fatalf(format, args...)
}

func (p *proc) stop() {
	if p.cmd.ProcessState == nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// rss returns the resident set of the process, in bytes (0 for nil).
func (p *proc) rss() int64 {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		fatal("%v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpu returns the user+system time of the process (0 for nil).
func (p *proc) cpu() time.Duration {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		fatal("%v", err)
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are fields 14 and 15 of the line, 12 and 13 after ") ".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("%v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitAccept(addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			fatal("%s not accepting: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNginx runs nginx terminating TLS on addr for upstream, as one
// single-process server (the figures are then one process's).
func startNginx(bin, dir, addr, upstream string, idle int) *proc {
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_rlimit_nofile %[5]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[4]d; }
http {
    access_log off;
    client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s;
    uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
    server {
        listen %[2]s ssl;
        ssl_certificate %[1]s/cert.pem;
        ssl_certificate_key %[1]s/key.pem;
        location / {
            proxy_pass http://%[3]s;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
        }
    }
}
`, dir, addr, upstream, 2*idle+256, 2*idle+512)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		fatal("%v", err)
	}
	return startProc(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file)
}

// tlsState reports the heap a server-side *tls.Conn holds once its
// handshake is done and one small record was read, with no goroutine
// attached: the floor of what wsgate would hold per connection if it
// drove crypto/tls from its event loop through a non-blocking adapter
// (the adapter's own buffers not counted).
func tlsState(n int) {
	dir, err := os.MkdirTemp("", "tlsfront-*")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	if err := writeCert(dir); err != nil {
		fatal("%v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		fatal("%v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("%v", err)
	}
	defer ln.Close()
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	servers := make([]*tls.Conn, 0, n)
	clients := make([]net.Conn, 0, n)
	for range n {
		done := make(chan net.Conn)
		go func() {
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				fatal("%v", err)
			}
			if _, err := c.Write([]byte("hello")); err != nil {
				fatal("%v", err)
			}
			done <- c
		}()
		raw, err := ln.Accept()
		if err != nil {
			fatal("%v", err)
		}
		sc := tls.Server(raw, conf)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(sc, buf); err != nil {
			fatal("%v", err)
		}
		servers = append(servers, sc)
		clients = append(clients, <-done)
	}
	// The clients' half is in this heap too: measured alone below.
	runtime.GC()
	runtime.ReadMemStats(&after)
	both := float64(after.HeapInuse-before.HeapInuse) / 1024 / float64(n)
	for _, c := range servers {
		c.Close()
	}
	servers = nil
	runtime.GC()
	var clientsOnly runtime.MemStats
	runtime.ReadMemStats(&clientsOnly)
	server := both - float64(clientsOnly.HeapInuse-before.HeapInuse)/1024/float64(n)
	fmt.Printf("\ncrypto/tls server conn, idle after handshake and one read, no goroutine: %.1f KiB heap/conn (%d conns)\n", server, n)
	for _, c := range clients {
		c.Close()
	}
}

// serveTLS is the Go terminator: it accepts TLS on listen and copies each
// connection's bytes to and from a TCP connection to upstream.
func serveTLS(arg string) {
	parts := strings.Split(arg, ",")
	if len(parts) != 4 {
		log.Fatal("-serve-tls LISTEN,UPSTREAM,DIR,BUFSIZE")
	}
	bufSize, err := strconv.Atoi(parts[3])
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(parts[2], "cert.pem"), filepath.Join(parts[2], "key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := tls.Listen("tcp", parts[0], &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", parts[1])
			if err != nil {
				return
			}
			defer up.Close()
			// Wrapped: a *net.TCPConn's ReadFrom and WriteTo would copy
			// with a 32 KiB buffer of their own.
			go func() {
				io.CopyBuffer(struct{ io.Writer }{up}, struct{ io.Reader }{c}, make([]byte, bufSize))
				up.Close()
			}()
			io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{up}, make([]byte, bufSize))
		}()
	}
}

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 to
// dir/cert.pem and dir/key.pem.
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsfront"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

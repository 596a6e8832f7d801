package upgrade_test

import (
	"fmt"
	"strings"

	"github.com/wsgate/wsgate/upgrade"
)

// The RFC 6455 §1.2 handshake, arriving in two reads, with the first frame
// right behind the request.
func Example() {
	buf := []byte("GET /chat?room=1 HTTP/1.1\r\n" +
		"Host: server.example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Origin: http://example.com\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"\r\n" +
		"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58") // a masked "Hello" frame

	var req upgrade.Request
	req.Reset(nil) // default limits

	n, err := req.Parse(buf[:60]) // the first read: not complete yet
	fmt.Println(n, err)
	n, err = req.Parse(buf) // all the bytes so far
	if err != nil {
		re, _ := upgrade.AsReject(err)
		fmt.Printf("%s", upgrade.AppendReject(nil, re))
		return
	}
	fmt.Printf("request of %d bytes, then %d frame bytes\n", n, len(buf[n:]))
	fmt.Printf("path %s, query %s, host %s, origin %s\n", req.Path(), req.Query(), req.Host(), req.Origin())

	resp := upgrade.AppendResponse(nil, req.Key(), &upgrade.Response{
		Protocol: req.Protocol([]string{"chat"}),
	})
	fmt.Print(strings.ReplaceAll(string(resp), "\r\n", "\n"))
	// Output:
	// 0 <nil>
	// request of 237 bytes, then 11 frame bytes
	// path /chat, query room=1, host server.example.com, origin http://example.com
	// HTTP/1.1 101 Switching Protocols
	// Upgrade: websocket
	// Connection: Upgrade
	// Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
	// Sec-WebSocket-Protocol: chat
}

// A client that speaks an older version of the protocol is told which one
// the server speaks (RFC 6455 §4.4).
func ExampleAppendReject() {
	var req upgrade.Request
	_, err := req.Parse([]byte("GET /chat HTTP/1.1\r\n" +
		"Host: server.example.com\r\n" +
		"Sec-WebSocket-Version: 8\r\n"))
	re, _ := upgrade.AsReject(err)
	fmt.Print(strings.ReplaceAll(string(upgrade.AppendReject(nil, re)), "\r\n", "\n"))
	// Output:
	// HTTP/1.1 426 Upgrade Required
	// Connection: Upgrade, close
	// Upgrade: websocket
	// Content-Type: text/plain; charset=utf-8
	// Content-Length: 43
	// Sec-WebSocket-Version: 13
	//
	// unsupported WebSocket version: 13 required
}

// Choosing a subprotocol and reading a cookie in an authorization hook.
func ExampleRequest_Protocol() {
	var req upgrade.Request
	_, err := req.Parse([]byte("GET / HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: v3.chat\r\n" +
		"Sec-WebSocket-Protocol: v2.chat, v1.chat\r\n" +
		"Cookie: theme=dark; session=\"s3cr3t\"\r\n" +
		"\r\n"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", req.Protocol([]string{"v1.chat", "v2.chat"}))
	fmt.Printf("%q\n", req.Protocol([]string{"v4.chat"}))
	fmt.Printf("%s\n", req.Cookie("session"))
	// Output:
	// "v2.chat"
	// ""
	// s3cr3t
}

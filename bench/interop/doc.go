// Package interop holds wsgate's interoperability tests: a wsgate echo
// server on 127.0.0.1 driven by real third-party clients over real sockets
// (gorilla/websocket, coder/websocket and Node's ws package). It has no
// non-test code besides this comment; run it with go test.
package interop

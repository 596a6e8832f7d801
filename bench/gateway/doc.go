// Package gateway runs a server that speaks Centrifugo's client protocol
// (v2) and server HTTP API, Centrifugo v6.9.1 itself or wsgate's gateway,
// with one channel configuration, and holds the tests that drive both with
// the real client SDKs: centrifuge-go (JSON and Protobuf), centrifuge-js
// in Node (JSON and Protobuf) and centrifuge-js in headless Chromium,
// plus the protocol's answers to bad and unsupported commands over a plain
// WebSocket, and the HTTP API's (wrong key, missing channel, both ways of
// passing the key).
//
// The targets a test run uses are named in GATEWAY_TARGETS (comma
// separated: centrifugo, wsgate; both by default). CENTRIFUGO and WSGATE
// name the binaries; otherwise Centrifugo is looked up in GOPATH/bin (where
// .ci/centrifugo.sh installs it) and wsgate is built from the module root.
// With CI=true a missing binary, node or chromium fails the test instead
// of skipping it.
package gateway

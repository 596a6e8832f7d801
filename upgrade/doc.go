// Package upgrade implements the server side of the WebSocket opening
// handshake (RFC 6455 §4.2): an incremental parser for the HTTP/1.1 upgrade
// request, its validation, and the 101 or error response.
//
// The package is built for an event loop and uses the standard library
// only. [Request.Parse] takes the bytes received so far and resumes where
// it stopped, so a request may arrive in any number of pieces; it keeps
// offsets, not slices, so the caller may move the bytes between calls.
// Parsing, [AppendAccept] and [AppendResponse] do not allocate (checked by
// TestUpgradeAllocs).
//
//	var req upgrade.Request
//	req.Reset(nil) // default limits
//	n, err := req.Parse(buf) // n == 0 && err == nil: wait for more bytes
//	if err != nil {
//		re, _ := upgrade.AsReject(err)
//		out = upgrade.AppendReject(out, re) // then close
//	} else if n > 0 {
//		proto := req.Protocol([]string{"chat"})
//		out = upgrade.AppendResponse(out, req.Key(), &upgrade.Response{Protocol: proto})
//		// buf[n:] holds the first WebSocket frames
//	}
//
// Every failure is a [RejectError] carrying the HTTP status to answer:
// 400 for a malformed request or a missing or bad handshake header, 405
// for a method other than GET, 505 for HTTP versions other than 1.1+, 426
// for a Sec-WebSocket-Version other than 13, 414 and 431 for the size
// limits of [Config].
//
// Behind a reverse proxy, [Request.Forwarded] reads what the proxies
// recorded about the client (RFC 7239 Forwarded, or X-Forwarded-For,
// -Host and -Proto), walking the hops from the nearest one; the caller
// decides which hops it trusts, and calls it only for a peer it trusts.
package upgrade

// Package wsgate is a WebSocket gateway that speaks Centrifugo's client
// protocol (v2) and a subset of its server HTTP API, on the event loops of
// package loop: Centrifugo's client SDKs (JavaScript, Go, Dart, Swift, Java,
// Python, C#) and backends work against it unchanged.
//
// A Node owns a loop.Server. Clients upgrade on /connection/websocket and
// speak JSON (text frames, commands and replies separated by newlines,
// several per frame) or Protobuf (subprotocol "centrifuge-protobuf", binary
// frames, each command and reply prefixed with its varint length). The
// first command must be connect with a JWT connection token (HS256/384/512
// with client.token.hmac_secret_key, RS256/384/512 with rsa_public_key,
// ES256/384/512 with ecdsa_public_key). Its claims give the user (sub), the
// expiry (exp: the client refreshes before it, or is disconnected with 3005
// after client.expired_close_delay), connection info (info, b64info) and
// server-side subscriptions (channels).
//
// Channels belong to namespaces ("ns:rest"; channels without a colon use
// channel.without_namespace). A namespace says whether clients may subscribe
// without a subscription token, publish, and read history, and how much
// history it keeps (history_size publications, none older than history_ttl).
// Each channel with history has an epoch and an offset that grows by one per
// publication. A client that resubscribes with recover, its epoch and offset
// gets every publication it missed, in order, and recovered: true, or
// recovered: false and no publications when the position is gone. Nothing
// is delivered twice and nothing is skipped, also for publications that race
// with the subscribe: a channel's lock orders the history read, the engine
// subscription and the subscribe reply against the offset check and the
// engine publish of each publication, and publications at or below the
// offset already delivered are dropped.
//
// A publication is encoded once per protocol format that has subscribers on
// the node, prepared once (loop.Server.Prepare), and published to an engine
// topic per channel and format: every subscriber gets the same bytes. A
// namespace's conflation_tag names a publication tag whose value becomes the
// conflation key; a connection subscribing to such a channel gets the
// loop.SlowConflate policy (latest message per key when it is slow).
//
// Per connection the gateway keeps one small struct (client id number, user,
// expiry timestamps, command counter, subscriptions) and no goroutine, timer
// or buffer. One sweep per second per node sends the protocol's pings (an
// empty reply, every client.ping_interval), disconnects clients silent for
// ping_interval+pong_timeout (3012 "no pong"), connections that did not
// connect within client.stale_close_delay (3502 "stale"), and expired
// connections and subscriptions (3005, 3006).
//
// The Broker interface carries publications between nodes and keeps history;
// MemoryBroker is the single-node implementation. A node subscribes a
// channel at its broker while it has local subscribers; the broker delivers
// publications per channel in offset order.
//
// No call to a broker that may wait on I/O is made on an event loop: a
// client command that needs the broker (publish, history, a subscribe
// that creates its channel or recovers) is queued for its client and run
// by a bounded pool of workers, in order with the client's other
// commands; a client with more than client.channel_limit +
// client.max_batch_size commands waiting is disconnected with 3013 "too
// many requests". With a MemoryBroker, whose calls wait on no I/O, such a
// command runs on the loop at once.
//
// Node.APIHandler serves the server API: POST /api/publish, broadcast, batch,
// history, history_remove, info, channels, disconnect, unsubscribe and
// subscribe, with Centrifugo's request and reply bodies ({"result": …} or
// {"error": {"code", "message"}}), authenticated by X-API-Key or
// "Authorization: apikey <key>" (401 otherwise); a body that is not JSON of
// the request's shape gets 400, an unknown method 404.
//
// The module's other packages:
//
//   - loop: the WebSocket server engine (Server, Conn, Handler, Options,
//     topics and slow-consumer policies), usable on its own;
//   - codec: RFC 6455 frame headers, masking, UTF-8 and close frames;
//   - upgrade: an incremental HTTP/1.1 upgrade-request parser and responses;
//   - deflate: permessage-deflate (RFC 7692) negotiation and compression
//     without a compressor per connection.
package wsgate

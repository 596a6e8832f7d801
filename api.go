package wsgate

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/centrifugal/protocol"

	"github.com/wsgate/wsgate/codec"
)

// ErrUnknownChannel is returned by Node.Publish for a channel whose
// namespace is not configured.
var ErrUnknownChannel = errors.New("wsgate: unknown channel")

// Publish publishes data to channel with the history options of its
// namespace (opts.HistorySize and HistoryTTL are taken from there) and
// returns the channel's position after it.
func (n *Node) Publish(channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	return n.publish(pubAPI, channel, data, opts)
}

// publish is Publish, counted for source (pubAPI, pubClient).
func (n *Node) publish(source int, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	o := n.cfg.options(channel)
	if o == nil {
		return StreamPosition{}, ErrUnknownChannel
	}
	if o.history() {
		opts.HistorySize, opts.HistoryTTL = o.HistorySize, time.Duration(o.HistoryTTL)
	} else {
		opts.HistorySize, opts.HistoryTTL = 0, 0
	}
	return n.brokerPublish(source, channel, data, opts)
}

// apiError is an error of the server API.
type apiError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

// Server API errors, as Centrifugo's.
var (
	apiErrInternal       = &apiError{100, "internal server error"}
	apiErrUnknownChannel = &apiError{102, "unknown channel"}
	apiErrBadRequest     = &apiError{107, "bad request"}
	apiErrNotAvailable   = &apiError{108, "not available"}
	apiErrUnrecoverable  = &apiError{112, "unrecoverable position"}
)

func (n *Node) apiErr(err error) *apiError {
	switch {
	case errors.Is(err, ErrUnknownChannel):
		return apiErrUnknownChannel
	case errors.Is(err, ErrUnrecoverablePosition):
		return apiErrUnrecoverable
	}
	n.log.Warn("api", "err", err)
	return apiErrInternal
}

// APIHandler serves the server HTTP API under /api/<method>: publish,
// broadcast, history, history_remove, info, channels, disconnect,
// unsubscribe, subscribe, batch; and at /api, the older single endpoint
// ({"method", "params"} commands one after another). Requests are POST with a
// JSON body; replies are {"result": …} or {"error": {"code", "message"}}.
// The key is in X-API-Key, Authorization: apikey <key>, or the api_key
// query parameter; a wrong or missing one gets 401, a body that is not a
// valid request 400, an unknown method 404.
func (n *Node) APIHandler() http.Handler {
	mux := http.NewServeMux()
	methods := map[string]func([]byte) (any, *apiError){
		"publish": n.apiPublish, "broadcast": n.apiBroadcast, "history": n.apiHistory,
		"history_remove": n.apiHistoryRemove, "info": n.apiInfo, "channels": n.apiChannels,
		"disconnect": n.apiDisconnect, "unsubscribe": n.apiUnsubscribe, "subscribe": n.apiSubscribe,
	}
	n.clusterize(methods)
	methods["batch"] = func(body []byte) (any, *apiError) { return n.apiBatch(body, methods) }
	for name, f := range methods {
		m := slices.Index(apiMethods[:], name)
		if m < 0 {
			panic("wsgate: API method " + name + " has no place in Stats")
		}
		mux.HandleFunc("POST /api/"+name, func(w http.ResponseWriter, r *http.Request) {
			body, ok := n.apiRequest(w, r)
			if !ok {
				return
			}
			out, ok := n.apiAnswer(m, f, body)
			if !ok {
				http.Error(w, "Bad Request", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(out)
		})
	}
	// The single endpoint of the API libraries written before Centrifugo
	// v5 (cent, pycent, phpcent), which Centrifugo still serves: commands
	// {"method": …, "params": …} one after the other (a line each, as
	// those libraries write them), answered by one reply per line. As
	// Centrifugo, a command that is no JSON object, or whose method is a
	// string naming no method, makes the request a bad one; here that is
	// found before any command runs (Centrifugo runs those before it).
	// The replies are written as they come: the body bounds the
	// commands, not their replies.
	mux.HandleFunc("POST /api", func(w http.ResponseWriter, r *http.Request) {
		body, ok := n.apiRequest(w, r)
		if !ok {
			return
		}
		// each calls f with every command of the body in turn (its
		// method's index in apiMethods, -1 for a method that is no
		// string, and its parameters) and reports whether the body is a
		// stream of commands: JSON objects, one after the other, as
		// Centrifugo reads it (whatever is between them, a line break or
		// not), each with a method.
		each := func(f func(m int, params json.RawMessage)) bool {
			dec := json.NewDecoder(bytes.NewReader(body))
			for {
				var c struct {
					Method json.RawMessage `json:"method"`
					Params json.RawMessage `json:"params"`
				}
				if err := dec.Decode(&c); err == io.EOF {
					return true
				} else if err != nil {
					return false
				}
				if len(c.Params) == 0 {
					c.Params = json.RawMessage(`{}`) // params may be left out
				}
				var name string // no method, or null: "", no method
				if len(c.Method) > 0 && json.Unmarshal(c.Method, &name) != nil {
					f(-1, c.Params)
					continue
				}
				name = strings.ToLower(name) // the case is ignored, as by Centrifugo
				if methods[name] == nil || name == "batch" {
					return false
				}
				f(slices.Index(apiMethods[:], name), c.Params)
			}
		}
		// Every command is checked before any runs; the body is read
		// again to run them, so that a request holds no more than it.
		cmds := 0
		if !each(func(int, json.RawMessage) { cmds++ }) || cmds == 0 {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		bw := bufio.NewWriter(w)
		sep := false
		each(func(m int, params json.RawMessage) {
			if sep {
				_ = bw.WriteByte('\n')
			}
			sep = true
			out, ok := []byte(nil), false
			if m >= 0 {
				out, ok = n.apiAnswer(m, methods[apiMethods[m]], params)
			}
			if !ok { // a method that is no string, or parameters that are not the method's
				out, _ = json.Marshal(struct {
					Error *apiError `json:"error"`
				}{apiErrBadRequest})
			}
			_, _ = bw.Write(out)
		})
		_ = bw.Flush()
	})
	return mux
}

// apiRequest checks r's key and reads its body; when it fails, it has
// answered (401, or 400 for a body that cannot be read).
func (n *Node) apiRequest(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !n.apiAuthorized(r) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// apiAnswer runs method f (index m of apiMethods) on its parameters
// body and returns its reply, {"result": …} or {"error": …} (a batch's is
// not wrapped); ok is false for a body that is not the method's
// parameters, which is answered with 400.
func (n *Node) apiAnswer(m int, f func([]byte) (any, *apiError), body []byte) (out []byte, ok bool) {
	defer func(start time.Time) {
		n.stats.random().api[m].observe(time.Since(start))
	}(time.Now())
	if len(bytes.TrimSpace(body)) == 0 {
		// As Centrifugo: a method's parameters are a JSON object, even
		// when empty ({}).
		return nil, false
	}
	res, aerr := f(body)
	switch b, isBatch := res.(batchResult); {
	case isBatch && aerr == nil:
		out, _ = json.Marshal(b)
	case aerr == errBadBody:
		return nil, false
	case aerr != nil:
		out, _ = json.Marshal(struct {
			Error *apiError `json:"error"`
		}{aerr})
	default:
		out, _ = json.Marshal(struct {
			Result any `json:"result"`
		}{res})
	}
	return out, true
}

// apiErrNotFound answers a batch command wsgate does not implement.
var apiErrNotFound = &apiError{104, "not found"}

// batchResult is the reply of /api/batch: one reply per command, each
// {"<method>": result} or {"error": …}.
type batchResult struct {
	Replies []map[string]any `json:"replies"`
}

// apiBatch runs the commands of a batch ({"commands": [{"publish": {…}},
// …]}) one after the other, in order; "parallel" is accepted and
// ignored.
func (n *Node) apiBatch(body []byte, methods map[string]func([]byte) (any, *apiError)) (any, *apiError) {
	var r struct {
		Commands []map[string]json.RawMessage `json:"commands"`
		Parallel bool                         `json:"parallel"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	out := batchResult{Replies: make([]map[string]any, len(r.Commands))}
	for i, cmd := range r.Commands {
		out.Replies[i] = map[string]any{"error": apiErrNotFound}
		if len(cmd) > 1 { // none is "not found", as Centrifugo
			out.Replies[i]["error"] = apiErrBadRequest
			continue
		}
		for name, params := range cmd {
			f := methods[name]
			if f == nil || name == "batch" {
				break
			}
			res, aerr := f(params)
			switch {
			case aerr == errBadBody:
				out.Replies[i]["error"] = apiErrBadRequest
			case aerr != nil:
				out.Replies[i]["error"] = aerr
			default:
				out.Replies[i] = map[string]any{name: res}
			}
		}
	}
	return out, nil
}

// errBadBody marks a body that does not decode: answered with 400.
var errBadBody = &apiError{107, "bad body"}

func (n *Node) apiAuthorized(r *http.Request) bool {
	if n.cfg.HTTPAPI.Insecure {
		return true
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "apikey ") {
			key = strings.TrimSpace(a[7:])
		}
	}
	if key == "" {
		key = r.URL.Query().Get("api_key") // as Centrifugo
	}
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(n.cfg.HTTPAPI.Key)) == 1
}

// decode reads a request body. Fields wsgate does not implement are
// ignored, as Centrifugo ignores unknown fields.
func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return errBadBody
	}
	return nil
}

type apiPublishRequest struct {
	Channel        string            `json:"channel"`
	Channels       []string          `json:"channels"` // broadcast
	Data           json.RawMessage   `json:"data"`
	B64Data        string            `json:"b64data"`
	SkipHistory    bool              `json:"skip_history"`
	Tags           map[string]string `json:"tags"`
	IdempotencyKey string            `json:"idempotency_key"`
}

type apiPublishResult struct {
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

func (r *apiPublishRequest) payload() ([]byte, *apiError) {
	if r.B64Data != "" {
		b, err := base64.StdEncoding.DecodeString(r.B64Data)
		if err != nil {
			return nil, apiErrBadRequest
		}
		return b, nil
	}
	if len(r.Data) == 0 {
		return nil, apiErrBadRequest
	}
	return []byte(r.Data), nil
}

func (n *Node) publish1(channel string, data []byte, r *apiPublishRequest) (*apiPublishResult, *apiError) {
	if channel == "" {
		return nil, apiErrBadRequest
	}
	opts := PublishOptions{Tags: r.Tags, IdempotencyKey: r.IdempotencyKey}
	if r.IdempotencyKey != "" {
		// A key is the channel's: the channel's length first, so that no
		// other channel and key make the same string.
		opts.IdempotencyKey = strconv.Itoa(len(channel)) + ":" + channel + r.IdempotencyKey
	}
	var sp StreamPosition
	var err error
	if r.SkipHistory {
		if n.cfg.options(channel) == nil {
			return nil, apiErrUnknownChannel
		}
		sp, err = n.brokerPublish(pubAPI, channel, data, opts)
	} else {
		sp, err = n.Publish(channel, data, opts)
	}
	if err != nil {
		return nil, n.apiErr(err)
	}
	return &apiPublishResult{Offset: sp.Offset, Epoch: sp.Epoch}, nil
}

func (n *Node) apiPublish(body []byte) (any, *apiError) {
	var r apiPublishRequest // channels, broadcast's, is ignored
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	data, e := r.payload()
	if e != nil {
		return nil, e
	}
	return n.publish1(r.Channel, data, &r)
}

func (n *Node) apiBroadcast(body []byte) (any, *apiError) {
	var r apiPublishRequest // channel, publish's, is ignored
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	if len(r.Channels) == 0 {
		return nil, apiErrBadRequest
	}
	// As Centrifugo, bad data is each channel's error.
	data, derr := r.payload()
	type resp struct {
		Error  *apiError         `json:"error,omitempty"`
		Result *apiPublishResult `json:"result,omitempty"`
	}
	out := make([]resp, len(r.Channels))
	for i, ch := range r.Channels {
		if derr != nil {
			out[i].Error = derr
			continue
		}
		out[i].Result, out[i].Error = n.publish1(ch, data, &r)
	}
	return map[string]any{"responses": out}, nil
}

type apiPublication struct {
	Data   json.RawMessage   `json:"data"`
	Info   *apiClientInfo    `json:"info,omitempty"`
	Offset uint64            `json:"offset,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

type apiClientInfo struct {
	User     string          `json:"user"`
	Client   string          `json:"client"`
	ConnInfo json.RawMessage `json:"conn_info,omitempty"`
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
	return s
}

func (n *Node) apiHistory(body []byte) (any, *apiError) {
	var r struct {
		Channel string `json:"channel"`
		Limit   int32  `json:"limit"` // as Centrifugo: beyond int32 is a bad body
		Since   *struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"since"`
		Reverse bool `json:"reverse"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	if r.Channel == "" {
		return nil, apiErrBadRequest
	}
	o := n.cfg.options(r.Channel)
	if o == nil {
		return nil, apiErrUnknownChannel
	}
	if !o.history() {
		return nil, apiErrNotAvailable
	}
	hopts := HistoryOptions{Limit: int(r.Limit), Reverse: r.Reverse, TTL: time.Duration(o.HistoryTTL)}
	if r.Since != nil {
		hopts.Since = &StreamPosition{Offset: r.Since.Offset, Epoch: r.Since.Epoch}
	}
	pubs, sp, err := n.history(r.Channel, hopts)
	if err != nil {
		return nil, n.apiErr(err)
	}
	res := struct {
		Publications []apiPublication `json:"publications"`
		Epoch        string           `json:"epoch"`
		Offset       uint64           `json:"offset"`
	}{Publications: make([]apiPublication, len(pubs)), Epoch: sp.Epoch, Offset: sp.Offset}
	for i, p := range pubs {
		ap := apiPublication{Data: rawJSON(p.Data), Offset: p.Offset, Tags: p.Tags}
		if p.Info != nil {
			ap.Info = &apiClientInfo{User: p.Info.User, Client: p.Info.Client, ConnInfo: rawJSON(p.Info.ConnInfo)}
		}
		res.Publications[i] = ap
	}
	return res, nil
}

func (n *Node) apiHistoryRemove(body []byte) (any, *apiError) {
	var r struct {
		Channel string `json:"channel"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	if r.Channel == "" {
		return nil, apiErrBadRequest
	}
	o := n.cfg.options(r.Channel)
	if o == nil {
		return nil, apiErrUnknownChannel
	}
	if !o.history() {
		return nil, apiErrNotAvailable // as Centrifugo, as history
	}
	if err := n.broker.RemoveHistory(r.Channel); err != nil {
		return nil, n.apiErr(err)
	}
	return struct{}{}, nil
}

func (n *Node) apiInfo(body []byte) (any, *apiError) {
	var r struct{}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	return map[string]any{"nodes": n.nodes()}, nil
}

// channelsResult is the result of /api/channels.
type channelsResult struct {
	Channels map[string]channelInfo `json:"channels"`
}

type channelInfo struct {
	NumClients int `json:"num_clients"`
}

// apiChannels lists the channels with subscribers on every node, their
// client counts summed.
func (n *Node) apiChannels(body []byte) (any, *apiError) {
	res, e := n.localChannels(body)
	if e != nil {
		return nil, e
	}
	c, ok := n.broker.(Cluster)
	if !ok {
		return res, nil
	}
	answers, err := c.Survey("channels", body)
	if err != nil {
		n.log.Warn("channels not asked of the other nodes", "err", err)
		return nil, apiErrInternal
	}
	for _, a := range answers {
		var other channelsResult
		if json.Unmarshal(a, &other) != nil {
			continue
		}
		for name, ci := range other.Channels {
			ci.NumClients += res.Channels[name].NumClients
			res.Channels[name] = ci
		}
	}
	return res, nil
}

// localChannels lists the channels with subscribers on this node.
func (n *Node) localChannels(body []byte) (channelsResult, *apiError) {
	var r struct {
		Pattern string `json:"pattern"`
	}
	if e := decode(body, &r); e != nil {
		return channelsResult{}, e
	}
	match, err := globRegexp(r.Pattern)
	if err != nil {
		return channelsResult{}, apiErrBadRequest
	}
	out := channelsResult{Channels: map[string]channelInfo{}}
	for i := range n.channels {
		sh := &n.channels[i]
		sh.mu.Lock()
		for name, ch := range sh.m {
			select {
			case <-ch.ready:
			default:
				continue // being created: nobody has joined yet
			}
			out.Channels[name] = channelInfo{ch.refs}
		}
		sh.mu.Unlock()
	}
	// Matched with no lock held: the shards' subscribes and deliveries
	// do not wait for the pattern.
	if r.Pattern != "" {
		maps.DeleteFunc(out.Channels, func(name string, _ channelInfo) bool { return !match.MatchString(name) })
	}
	return out, nil
}

// maxPatternLength bounds a channels pattern (Centrifugo has no bound):
// matching costs the pattern's length times the name's.
const maxPatternLength = 1 << 10

// globRegexp compiles a channels pattern as Centrifugo reads it, a glob
// without separators: * is any run of characters ("/" included), ? any
// one, [abc], [a-z] and [!a-z] a class, {a,b} one of the alternatives
// (each a pattern), and \ takes the next character as it is. A run of *
// is one. As a regexp, a match costs time linear in the name, times the
// pattern's length (at most maxPatternLength).
func globRegexp(p string) (*regexp.Regexp, error) {
	errPattern := errors.New("wsgate: bad channels pattern")
	if len(p) > maxPatternLength {
		return nil, errPattern
	}
	var b strings.Builder
	b.WriteString(`^(?s:`)
	depth := 0
	star := false // the last thing written is a *
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		i += n
		if r == '*' {
			if !star {
				b.WriteString(`.*`)
			}
			star = true
			continue
		}
		star = false
		switch {
		case r == '?':
			b.WriteString(`.`)
		case r == '{':
			depth++
			b.WriteString(`(?:`)
		case r == '}' && depth > 0:
			depth--
			b.WriteString(`)`)
		case r == ',' && depth > 0:
			b.WriteString(`|`)
		case r == '\\':
			if i == len(p) {
				return nil, errPattern
			}
			r, n = utf8.DecodeRuneInString(p[i:])
			i += n
			b.WriteString(regexp.QuoteMeta(string(r)))
		case r == '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, errPattern
			}
			class := p[i : i+j]
			i += j + 1
			b.WriteByte('[')
			if c, ok := strings.CutPrefix(class, "!"); ok {
				b.WriteByte('^')
				class = c
			}
			if class == "" {
				return nil, errPattern
			}
			for _, c := range class {
				if strings.ContainsRune(`\^[]`, c) {
					b.WriteByte('\\')
				}
				b.WriteRune(c)
			}
			b.WriteByte(']')
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if depth != 0 {
		return nil, errPattern
	}
	b.WriteString(`)$`)
	return regexp.Compile(b.String())
}

func (n *Node) apiDisconnect(body []byte) (any, *apiError) {
	var r struct {
		User       string   `json:"user"`
		Client     string   `json:"client"`
		Whitelist  []string `json:"whitelist"`
		Disconnect *struct {
			Code   uint32 `json:"code"`
			Reason string `json:"reason"`
		} `json:"disconnect"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	d := disconnectForceNoReconn
	if r.Disconnect != nil {
		// Any code and reason, as Centrifugo takes them. A code that may
		// not go in a close frame goes as 1011 (loop.Conn.Close; one
		// past 16 bits too), and the reason is cut to what a close frame
		// holds.
		code := r.Disconnect.Code
		if code > 0xffff {
			code = uint32(codec.StatusInternalError)
		}
		d = disconnect{code, codec.CutReason(r.Disconnect.Reason)}
	}
	if r.User == "" && r.Client == "" {
		return struct{}{}, nil // nobody, as Centrifugo
	}
next:
	for _, c := range n.clientsOf(r.User, r.Client, r.User == "") {
		for _, w := range r.Whitelist {
			if c.id(n) == w {
				continue next
			}
		}
		c.mu.Lock()
		c.disconnect(d)
		c.mu.Unlock()
	}
	return struct{}{}, nil
}

func (n *Node) apiUnsubscribe(body []byte) (any, *apiError) {
	var r struct {
		Channel string `json:"channel"`
		User    string `json:"user"`
		Client  string `json:"client"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	if r.Channel != "" && n.cfg.options(r.Channel) == nil {
		return nil, apiErrUnknownChannel
	}
	if r.Channel == "" || (r.User == "" && r.Client == "") {
		return struct{}{}, nil // nothing to do, as Centrifugo
	}
	for _, c := range n.clientsOf(r.User, r.Client, r.User == "") {
		c.mu.Lock()
		// Behind the client's queued commands, if any: a subscribe to
		// the channel that the client sent before is undone.
		err := n.apiRun(c, func() error {
			if c.state.Load() == stateConnected && n.unsubscribe(c, r.Channel, leaveQueued) {
				c.write(&protocol.Reply{Push: &protocol.Push{Channel: r.Channel,
					Unsubscribe: &protocol.Unsubscribe{Code: 2000, Reason: "server unsubscribe"}}})
			}
			return nil
		})
		c.mu.Unlock()
		if err != nil && !apiSkipped(err) {
			return nil, n.apiErr(err)
		}
	}
	return struct{}{}, nil
}

// apiSkipped reports whether err only means that a client was passed
// over (closed, or not subscribable), which an API call does not report.
// A client whose command queue is full is passed over too (apiRun logs
// it), so that the call still reaches the user's other connections
// (Centrifugo, with no queue, reaches them all).
func apiSkipped(err error) bool {
	return err == errSkip || err == errClientClosed || err == errQueueFull
}

// errSkip passes over a client that /api/subscribe does not subscribe
// (closed, subscribed already, at its channel limit).
var errSkip = errors.New("wsgate: client skipped")

func (n *Node) apiSubscribe(body []byte) (any, *apiError) {
	var r struct {
		Channel      string `json:"channel"`
		User         string `json:"user"`
		Client       string `json:"client"`
		RecoverSince *struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"recover_since"`
	}
	if e := decode(body, &r); e != nil {
		return nil, e
	}
	if r.Channel == "" {
		return nil, apiErrBadRequest
	}
	opts := n.cfg.options(r.Channel)
	if opts == nil {
		return nil, apiErrUnknownChannel
	}
	if r.User == "" && r.Client == "" {
		return struct{}{}, nil // nobody, as Centrifugo
	}
	sreq := &protocol.SubscribeRequest{Recoverable: true}
	if r.RecoverSince != nil {
		sreq.Recover, sreq.Offset, sreq.Epoch = true, r.RecoverSince.Offset, r.RecoverSince.Epoch
	}
	for _, c := range n.clientsOf(r.User, r.Client, r.User == "") {
		c.mu.Lock()
		// Behind the client's queued commands, if any: after an
		// unsubscribe from the channel, or a subscribe to it, that the
		// client sent before.
		err := n.apiRun(c, func() error { return n.apiSubscribeClient(c, r.Channel, opts, sreq) })
		c.mu.Unlock()
		if err != nil && !apiSkipped(err) {
			return nil, n.apiErr(err)
		}
	}
	return struct{}{}, nil
}

// apiSubscribeClient subscribes c to the channel name for
// /api/subscribe: errSkip when c is closing, subscribed to it already or
// at its channel limit. c.mu held.
func (n *Node) apiSubscribeClient(c *session, name string, opts *ChannelOptions, sreq *protocol.SubscribeRequest) error {
	valid := func() error {
		if c.state.Load() != stateConnected || c.closing || c.subscribed(name) >= 0 || c.nsubs() >= n.cfg.Client.ChannelLimit {
			return errSkip
		}
		return nil
	}
	if err := valid(); err != nil {
		return err
	}
	// The push subscribe, then the recovered publications as pushes,
	// written under the channel's lock. The broker is called with c.mu
	// released (subscribe's wait).
	j := &joining{name: name, opts: opts, req: sreq, server: true}
	return n.subscribe(c, []*joining{j}, true, valid, func() {
		res := j.res
		sp := &protocol.Subscribe{Recoverable: res.Recoverable, Epoch: res.Epoch, Offset: res.Offset, Positioned: res.Positioned}
		if len(res.Publications) > 0 {
			sp.Offset = res.Publications[0].Offset - 1
		}
		c.write(&protocol.Reply{Push: &protocol.Push{Channel: name, Subscribe: sp}})
		for _, p := range res.Publications {
			c.write(&protocol.Reply{Push: &protocol.Push{Channel: name, Pub: p}})
		}
	})
}

package wsgate

import (
	"strings"
	"testing"
)

// TestReview3APIPrivateChannelNamespace: Centrifugo resolves the
// namespace of a private channel ("$" prefix, channel.private_prefix)
// without the "$": "$chat:a" is in namespace "chat". wsgate looks for a
// namespace "$chat" and answers 102, so a backend cannot publish to, or
// read the history of, a private channel of a namespace. An empty
// namespace (":x") is the channels without namespace in Centrifugo;
// wsgate answers 102 to it too.
//
// Against Centrifugo v6.9.1 ("chat" keeps history; without_namespace
// keeps none):
//
//	publish {"channel":"$chat:a","data":{}}       → {"result":{"offset":1,"epoch":"GKGqdCEb"}}
//	history {"channel":"$chat:a","limit":-1}      → {"result":{"publications":[{"data":{},"offset":1}],"epoch":"GKGqdCEb","offset":1}}
//	publish {"channel":":x","data":{}}            → {"result":{}}
//	history {"channel":":x","limit":-1}           → {"error":{"code":108,"message":"not available"}}
//
// wsgate answers {"error":{"code":102,"message":"unknown channel"}} to
// all four.
func TestReview3APIPrivateChannelNamespace(t *testing.T) {
	cfg := gwConfig()
	cfg.Channel.WithoutNamespace = ChannelOptions{AllowSubscribeForClient: true} // no history, as in the Centrifugo run
	n := startNode(t, cfg)
	for _, c := range []struct{ method, body, want string }{
		{"publish", `{"channel":"$chat:a","data":{}}`, `{"result":{"offset":1,"epoch":"`},
		{"history", `{"channel":"$chat:a","limit":-1}`, `{"result":{"publications":[{"data":{},"offset":1}],"epoch":"`},
		{"publish", `{"channel":":x","data":{}}`, `{"result":{}}`},
		{"history", `{"channel":":x","limit":-1}`, `{"error":{"code":108,"message":"not available"}}`},
	} {
		status, out := n.apiRaw(t, c.method, gwAPIKey, c.body)
		if status != 200 || !strings.HasPrefix(string(out), c.want) {
			t.Errorf("%s %s: wsgate %d %s; Centrifugo 200 %s…", c.method, c.body, status, out, c.want)
		}
	}
}

package wsgate

import "testing"

// TestReview3APIAnswers: requests that wsgate answers otherwise than
// Centrifugo v6.9.1. Each case is one request on a fresh channel, with
// the exact status and body Centrifugo gave to it (its namespaces as
// gwConfig's: "chat" with history, "plain" without, "zz" unknown; no
// client connected).
func TestReview3APIAnswers(t *testing.T) {
	n := startNode(t, gwConfig())
	for _, c := range []struct {
		name, method, body string
		status             int
		want               string // "" when only the status is compared
	}{
		// A namespace without history: 108, as history on it.
		{"history_remove without history", "history_remove", `{"channel":"plain:x"}`,
			200, `{"error":{"code":108,"message":"not available"}}`},
		// Unknown fields are ignored, "channels" in publish too: it
		// publishes to "channel".
		{"publish with channels", "publish", `{"channel":"chat:p1","channels":["chat:p2"],"data":{}}`,
			200, `{"result":{"offset":1,"epoch":"`},
		// "channel" in broadcast is ignored likewise.
		{"broadcast with channel", "broadcast", `{"channel":"chat:b1","channels":["chat:b2"],"data":{}}`,
			200, `{"result":{"responses":[{"result":{"offset":1,"epoch":"`},
		// Missing data in broadcast is an error per channel.
		{"broadcast without data", "broadcast", `{"channels":["chat:b3"]}`,
			200, `{"result":{"responses":[{"error":{"code":107,"message":"bad request"}}]}}`},
		// unsubscribe checks the channel's namespace, as subscribe does.
		{"unsubscribe unknown namespace", "unsubscribe", `{"channel":"zz:a","user":"u"}`,
			200, `{"error":{"code":102,"message":"unknown channel"}}`},
		// Empty targets are no error: nobody matches.
		{"disconnect nobody", "disconnect", `{}`, 200, `{"result":{}}`},
		{"unsubscribe without user", "unsubscribe", `{"channel":"chat:a"}`, 200, `{"result":{}}`},
		{"unsubscribe without channel", "unsubscribe", `{"user":"u"}`, 200, `{"result":{}}`},
		{"subscribe without user", "subscribe", `{"channel":"chat:a"}`, 200, `{"result":{}}`},
		// Any code is taken (a connected client of the user gets close
		// 1000 "x" from Centrifugo).
		{"disconnect code 1000", "disconnect", `{"user":"nobody","disconnect":{"code":1000,"reason":"x"}}`,
			200, `{"result":{}}`},
		// limit is an int32.
		{"history limit beyond int32", "history", `{"channel":"chat:h","limit":99999999999}`, 400, ""},
		// A batch command without a method is "not found".
		{"batch empty command", "batch", `{"commands":[{}]}`,
			200, `{"replies":[{"error":{"code":104,"message":"not found"}}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := n.apiRaw(t, c.method, gwAPIKey, c.body)
			got := string(out)
			if len(got) > len(c.want) && c.want != "" && c.want[len(c.want)-1] == '"' {
				got = got[:len(c.want)] // a prefix: the epoch differs
			}
			if status != c.status || (c.want != "" && got != c.want) {
				t.Errorf("%s %s\n\twsgate:     %d %s\n\tCentrifugo: %d %s", c.method, c.body,
					status, out, c.status, c.want)
			}
		})
	}
}

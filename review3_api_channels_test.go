package wsgate

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReview3APIChannelsPattern: /api/channels matches "pattern" with
// path.Match, whose "*" stops at "/" and which has no {a,b}; Centrifugo
// matches with a glob without separators: "*" is any run of characters,
// "/" too, and {a,b} is an alternation. Channels with a "/" in their
// name are missing from wsgate's list.
//
// Against Centrifugo v6.9.1, one client subscribed to chat:a/b, chat:x
// and chat:b:
//
//	{"pattern":"chat:*"}       → {"result":{"channels":{"chat:a/b":{"num_clients":1},"chat:b":{"num_clients":1},"chat:x":{"num_clients":1}}}}
//	{"pattern":"chat:{a/b,x}"} → {"result":{"channels":{"chat:a/b":{"num_clients":1},"chat:x":{"num_clients":1}}}}
//	{"pattern":"chat:[ax]*"}   → {"result":{"channels":{"chat:a/b":{"num_clients":1},"chat:x":{"num_clients":1}}}}
//	{"pattern":"chat:?"}       → {"result":{"channels":{"chat:b":{"num_clients":1},"chat:x":{"num_clients":1}}}}
//
// wsgate answers [chat:b chat:x], [], [chat:x] and [chat:b chat:x].
func TestReview3APIChannelsPattern(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	for _, ch := range []string{"chat:a/b", "chat:x", "chat:b"} {
		if r := g.subscribe(&protocol.SubscribeRequest{Channel: ch}); r.Error != nil {
			t.Fatalf("subscribe %s: %+v", ch, r)
		}
	}
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"chat:*", []string{"chat:a/b", "chat:b", "chat:x"}},
		{"chat:{a/b,x}", []string{"chat:a/b", "chat:x"}},
		{"chat:[ax]*", []string{"chat:a/b", "chat:x"}},
		{"chat:?", []string{"chat:b", "chat:x"}},
	} {
		status, out := n.apiRaw(t, "channels", gwAPIKey, map[string]string{"pattern": c.pattern})
		var r struct {
			Result struct {
				Channels map[string]json.RawMessage `json:"channels"`
			} `json:"result"`
		}
		if status != 200 || json.Unmarshal(out, &r) != nil {
			t.Fatalf("channels %q: %d %s", c.pattern, status, out)
		}
		got := []string{}
		for name := range r.Result.Channels {
			got = append(got, name)
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("channels %q: %v; Centrifugo: %v", c.pattern, got, c.want)
		}
	}
}

// TestChannelsPatternSyntax: the pattern syntax of /api/channels, case by
// case, and the patterns it refuses.
func TestChannelsPatternSyntax(t *testing.T) {
	for _, c := range []struct {
		pattern string
		yes, no []string
	}{
		{"*", []string{"", "a", "a/b:c"}, nil},
		{"chat:?", []string{"chat:é", "chat:/"}, []string{"chat:", "chat:ab"}},
		{`a\*b`, []string{"a*b"}, []string{"axb", "ab"}},
		{`a\\b`, []string{`a\b`}, []string{"ab"}},
		{"{a,{b,c}}x", []string{"ax", "bx", "cx"}, []string{"x", "abx", "dx"}},
		{"{a,}x", []string{"ax", "x"}, []string{"bx"}},
		{"[!a]", []string{"b", "é"}, []string{"a", ""}},
		{"[a-c]z", []string{"bz"}, []string{"dz", "z"}},
		{"a.b(c)+", []string{"a.b(c)+"}, []string{"axb(c)+", "a.bcc"}},
		{"x}", []string{"x}"}, nil},
		{"a,b", []string{"a,b"}, []string{"a"}},
		{"[\\^]", []string{"^", `\`}, []string{"a"}},
	} {
		re, err := globRegexp(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		for _, s := range c.yes {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", c.pattern, s)
			}
		}
		for _, s := range c.no {
			if re.MatchString(s) {
				t.Errorf("%q matches %q", c.pattern, s)
			}
		}
	}
	for _, p := range []string{"[", "[]", "[]a]", "[!]", "{a", "{a,{b}", `a\`, "[z-a]"} {
		if _, err := globRegexp(p); err == nil {
			t.Errorf("%q: no error", p)
		}
	}
}

// TestChannelsPatternStars: a run of * compiles to one .*, and a pattern
// past maxPatternLength is refused.
func TestChannelsPatternStars(t *testing.T) {
	re, err := globRegexp(strings.Repeat("*", maxPatternLength-4) + "a" + strings.Repeat("*", 3))
	if err != nil {
		t.Fatal(err)
	}
	if want := `^(?s:.*a.*)$`; re.String() != want {
		t.Errorf("regexp %s, want %s", re, want)
	}
	if _, err := globRegexp(strings.Repeat("a", maxPatternLength+1)); err == nil {
		t.Error("a pattern past maxPatternLength compiled")
	}
}

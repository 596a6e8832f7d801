package deflate

import (
	"bytes"
	"testing"
)

const (
	noCtx   = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	srvCtx  = "permessage-deflate; client_no_context_takeover"
	bothCtx = "permessage-deflate"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	takeover := &Config{ServerContextTakeover: true}
	clientCtx := &Config{ClientContextTakeover: true}
	client15 := &Config{ClientContextTakeover: true, ClientMaxWindowBits: 15}
	both := &Config{ServerContextTakeover: true, ClientContextTakeover: true, HistoryBits: 13, ClientMaxWindowBits: 10}
	def := Params{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}

	tests := []struct {
		name   string
		offers string
		cfg    *Config
		want   string // "" for declined
		params Params
	}{
		// What real clients send.
		{"chromium", "permessage-deflate; client_max_window_bits", nil, noCtx, def},
		{"bare", "permessage-deflate", nil, noCtx, def},
		{"node ws", "permessage-deflate; client_max_window_bits", takeover, srvCtx,
			Params{ServerContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15, HistoryBits: 12}},
		{"empty header", "", nil, "", Params{}},
		{"other extension only", "x-webkit-deflate-frame", nil, "", Params{}},
		{"other extension first", "foo; bar=1, permessage-deflate", nil, noCtx, def},
		{"other extension with quoted comma", `foo; bar="a, permessage-deflate", permessage-deflate; server_no_context_takeover`, nil, noCtx, def},
		{"case-insensitive", "PerMessage-Deflate; Client_Max_Window_Bits", nil, noCtx, def},
		{"whitespace", " \tpermessage-deflate \t;\t client_max_window_bits \t= \t10 \t, ", nil, noCtx, def},
		{"empty list elements", ", ,permessage-deflate,,", nil, noCtx, def},

		// Each parameter.
		{"server_no_context_takeover", "permessage-deflate; server_no_context_takeover", takeover, noCtx, def},
		{"server_no_context_takeover with value", "permessage-deflate; server_no_context_takeover=1", nil, "", Params{}},
		{"server_no_context_takeover empty quoted", `permessage-deflate; server_no_context_takeover=""`, nil, "", Params{}},
		{"client_no_context_takeover", "permessage-deflate; client_no_context_takeover", clientCtx, noCtx, def},
		{"client_no_context_takeover with value", "permessage-deflate; client_no_context_takeover=x", nil, "", Params{}},
		{"server_max_window_bits 10", "permessage-deflate; server_max_window_bits=10", nil,
			noCtx + "; server_max_window_bits=10", Params{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}},
		{"server_max_window_bits 8", "permessage-deflate; server_max_window_bits=8", nil,
			noCtx + "; server_max_window_bits=8", Params{ServerMaxWindowBits: 8, ClientMaxWindowBits: 15}},
		{"server_max_window_bits 15", "permessage-deflate; server_max_window_bits=15", nil,
			noCtx + "; server_max_window_bits=15", def},
		{"server_max_window_bits quoted", `permessage-deflate; server_max_window_bits="9"`, nil,
			noCtx + "; server_max_window_bits=9", Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}},
		{"server_max_window_bits quoted-pair", `permessage-deflate; server_max_window_bits="1\2"`, nil,
			noCtx + "; server_max_window_bits=12", Params{ServerMaxWindowBits: 12, ClientMaxWindowBits: 15}},
		{"server_max_window_bits leading zero", "permessage-deflate; server_max_window_bits=09", nil,
			noCtx + "; server_max_window_bits=9", Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}},
		{"server_max_window_bits caps history", "permessage-deflate; server_max_window_bits=10", takeover,
			srvCtx + "; server_max_window_bits=10", Params{ServerContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: 15, HistoryBits: 10}},
		{"server_max_window_bits no value", "permessage-deflate; server_max_window_bits", nil, "", Params{}},
		{"server_max_window_bits 7", "permessage-deflate; server_max_window_bits=7", nil, "", Params{}},
		{"server_max_window_bits 16", "permessage-deflate; server_max_window_bits=16", nil, "", Params{}},
		{"server_max_window_bits 0", "permessage-deflate; server_max_window_bits=0", nil, "", Params{}},
		{"server_max_window_bits 008", "permessage-deflate; server_max_window_bits=008", nil, "", Params{}},
		{"server_max_window_bits sign", "permessage-deflate; server_max_window_bits=+9", nil, "", Params{}},
		{"server_max_window_bits hex", `permessage-deflate; server_max_window_bits="0xA"`, nil, "", Params{}},
		{"server_max_window_bits long quoted", `permessage-deflate; server_max_window_bits="100000000009"`, nil, "", Params{}},
		{"server_max_window_bits empty", "permessage-deflate; server_max_window_bits=", nil, "", Params{}},
		{"server_max_window_bits empty quoted", `permessage-deflate; server_max_window_bits=""`, nil, "", Params{}},
		{"client_max_window_bits no value", "permessage-deflate; client_max_window_bits", nil, noCtx, def},
		{"client_max_window_bits value", "permessage-deflate; client_max_window_bits=9", nil, noCtx, def},
		{"client_max_window_bits 7", "permessage-deflate; client_max_window_bits=7", nil, "", Params{}},
		{"client_max_window_bits 16", "permessage-deflate; client_max_window_bits=16", nil, "", Params{}},
		{"client_max_window_bits letters", "permessage-deflate; client_max_window_bits=ab", nil, "", Params{}},

		// Client context takeover (§7.1.2.2: answer client_max_window_bits
		// only when offered).
		{"client takeover bounded by config", "permessage-deflate; client_max_window_bits", clientCtx,
			"permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
			Params{ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 12}},
		{"client takeover bounded by offer", "permessage-deflate; client_max_window_bits=9", clientCtx,
			"permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
			Params{ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 9}},
		{"client takeover not offered bits", "permessage-deflate", clientCtx, noCtx, def},
		{"client takeover offered 8 bits", "permessage-deflate; client_max_window_bits=8", clientCtx, noCtx, def},
		{"client takeover config 8 bits", "permessage-deflate; client_max_window_bits", &Config{ClientContextTakeover: true, ClientMaxWindowBits: 8},
			"permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
			Params{ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 9}},
		{"client takeover 15 without bits", "permessage-deflate", client15,
			"permessage-deflate; server_no_context_takeover",
			Params{ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"both takeovers", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=14", both,
			"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
			Params{ServerContextTakeover: true, ClientContextTakeover: true, ServerMaxWindowBits: 12, ClientMaxWindowBits: 10, HistoryBits: 12}},
		{"both takeovers bare", "permessage-deflate; client_max_window_bits", both,
			"permessage-deflate; client_max_window_bits=10",
			Params{ServerContextTakeover: true, ClientContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 10, HistoryBits: 13}},

		// Unknown and duplicate parameters decline that offer only.
		{"unknown parameter", "permessage-deflate; foo", nil, "", Params{}},
		{"unknown then good", "permessage-deflate; foo, permessage-deflate; server_max_window_bits=11", nil,
			noCtx + "; server_max_window_bits=11", Params{ServerMaxWindowBits: 11, ClientMaxWindowBits: 15}},
		{"duplicate", "permessage-deflate; client_max_window_bits; client_max_window_bits=10", nil, "", Params{}},
		{"duplicate case", "permessage-deflate; server_no_context_takeover; SERVER_NO_CONTEXT_TAKEOVER", nil, "", Params{}},
		{"duplicate then good", "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, permessage-deflate", nil, noCtx, def},
		{"first acceptable wins", "permessage-deflate; server_max_window_bits=10, permessage-deflate", nil,
			noCtx + "; server_max_window_bits=10", Params{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}},
		{"invalid then valid then valid", "permessage-deflate; server_max_window_bits=99, permessage-deflate; server_max_window_bits=9, permessage-deflate", nil,
			noCtx + "; server_max_window_bits=9", Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}},

		// Syntax errors decline the element and resume at the next comma.
		{"junk after token", "permessage-deflate junk, permessage-deflate", nil, noCtx, def},
		{"missing param name", "permessage-deflate;, permessage-deflate", nil, noCtx, def},
		{"missing param name then =", "permessage-deflate; =10", nil, "", Params{}},
		{"unterminated quote", `permessage-deflate; server_max_window_bits="10, permessage-deflate`, nil, "", Params{}},
		{"bad quoted char", "permessage-deflate; client_max_window_bits=\"1\x010\", permessage-deflate", nil, noCtx, def},
		{"quoted backslash at end", `permessage-deflate; client_max_window_bits="\`, nil, "", Params{}},
		{"separator in token", "permessage-deflate; client_max_window_bits=1(0), permessage-deflate", nil, noCtx, def},
		{"leading semicolon", "; permessage-deflate", nil, "", Params{}},
		{"name with value", "permessage-deflate=1", nil, "", Params{}},
		{"deflate as param of other", "foo; permessage-deflate", nil, "", Params{}},
		{"prefix of name", "permessage-deflatex", nil, "", Params{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("prefix:")
			resp, p, ok := Negotiate(dst, []byte(tt.offers), tt.cfg)
			if !bytes.HasPrefix(resp, []byte("prefix:")) {
				t.Fatalf("dst prefix lost: %q", resp)
			}
			got := string(resp[len("prefix:"):])
			if ok != (tt.want != "") || got != tt.want {
				t.Fatalf("Negotiate(%q) = %q, %v; want %q", tt.offers, got, ok, tt.want)
			}
			if p != tt.params {
				t.Fatalf("Negotiate(%q) params = %+v; want %+v", tt.offers, p, tt.params)
			}
			if ok {
				checkResponse(t, tt.offers, got, p)
			}
		})
	}
}

// checkResponse checks that an answer parses back into the Params that were
// agreed, and carries client_max_window_bits only if it was offered.
func checkResponse(t testing.TB, offers, resp string, p Params) {
	t.Helper()
	next, o, isDeflate, valid := parseElement([]byte(resp), 0)
	if next != len(resp) || !isDeflate || !valid {
		t.Fatalf("answer %q does not parse as one valid permessage-deflate element", resp)
	}
	if o.has(paramServerNoCtx) == p.ServerContextTakeover {
		t.Fatalf("answer %q disagrees with ServerContextTakeover=%v", resp, p.ServerContextTakeover)
	}
	if o.has(paramClientNoCtx) == p.ClientContextTakeover {
		t.Fatalf("answer %q disagrees with ClientContextTakeover=%v", resp, p.ClientContextTakeover)
	}
	if o.has(paramServerMax) && o.serverMax != p.ServerMaxWindowBits {
		t.Fatalf("answer %q disagrees with ServerMaxWindowBits=%d", resp, p.ServerMaxWindowBits)
	}
	if o.has(paramClientMax) {
		if o.clientMax == 0 {
			t.Fatalf("answer %q has client_max_window_bits without a value", resp)
		}
		if !bytes.Contains(bytes.ToLower([]byte(offers)), []byte("client_max_window_bits")) {
			t.Fatalf("answer %q has client_max_window_bits, which was not offered in %q (RFC 7692 §7.1.2.2)", resp, offers)
		}
		if o.clientMax != p.ClientMaxWindowBits || !p.ClientContextTakeover {
			t.Fatalf("answer %q disagrees with %+v", resp, p)
		}
	}
	if p.ServerMaxWindowBits < 15 && !o.has(paramServerMax) {
		t.Fatalf("answer %q omits the server_max_window_bits=%d it honours", resp, p.ServerMaxWindowBits)
	}
	if p.ServerContextTakeover && (p.HistoryBits < 8 || p.HistoryBits > p.ServerMaxWindowBits) {
		t.Fatalf("HistoryBits %d outside 8..%d", p.HistoryBits, p.ServerMaxWindowBits)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := []*Config{nil, {}, {Level: 9, HistoryBits: 8, ClientMaxWindowBits: 15, Threshold: -1}}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []*Config{{Level: 10}, {Level: -1}, {HistoryBits: 7}, {HistoryBits: 16}, {ClientMaxWindowBits: 7}, {ClientMaxWindowBits: 16}, {HistoryIdle: -1}}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
		if _, err := NewCompressor(c); err == nil {
			t.Errorf("NewCompressor(%+v): no error", c)
		}
		// Negotiate replaces the bad values with defaults instead.
		if _, _, ok := Negotiate(nil, []byte("permessage-deflate"), c); !ok {
			t.Errorf("Negotiate with %+v declined", c)
		}
	}
	// The caller's struct is never modified.
	c := Config{Level: 0}
	NewCompressor(&c)
	Negotiate(nil, []byte("permessage-deflate"), &c)
	if c != (Config{}) {
		t.Errorf("Config modified: %+v", c)
	}
}

package main

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate"
)

const minimalJSON = `{"client":{"token":{"hmac_secret_key":"s"}},"http_api":{"key":"k"},"listen":{"api":"file:1"}}`

const minimalYAML = `
client:
  token:
    hmac_secret_key: s
http_api:
  key: k
listen:
  api: "file:1"
`

func configFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	writeFile(t, p, body)
	return p
}

// TestConfigPrecedence: a flag beats a WSGATE_* variable, which beats the
// file, which beats the defaults; JSON and YAML files read the same.
func TestConfigPrecedence(t *testing.T) {
	for _, file := range []string{configFile(t, "c.json", minimalJSON), configFile(t, "c.yaml", minimalYAML), configFile(t, "c.yml", minimalYAML)} {
		env := []string{"HOME=/x", "WSGATE_LISTEN_API=env:2", "WSGATE_LISTEN_ADMIN=env:3"}
		flags := map[string]string{"listen.api": "flag:4"}
		for _, c := range []struct {
			env                   []string
			flags                 map[string]string
			api, admin, websocket string
		}{
			{env, flags, "flag:4", "env:3", defaultWebSocketAddr},
			{env, nil, "env:2", "env:3", defaultWebSocketAddr},
			{nil, nil, "file:1", defaultAdminAddr, defaultWebSocketAddr},
		} {
			st, _, err := loadSettings(file, c.env, c.flags, true)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if l := st.Listen; l.API != c.api || l.Admin != c.admin || l.WebSocket != c.websocket {
				t.Fatalf("%s env %q flags %v: listen %+v, want api %s admin %s websocket %s", file, c.env, c.flags, l, c.api, c.admin, c.websocket)
			}
			if st.Client.Token.HMACSecretKey != "s" || st.HTTPAPI.Key != "k" || time.Duration(st.Shutdown.DrainPeriod) != defaultDrainPeriod {
				t.Fatalf("%s: %+v", file, st)
			}
		}
	}
}

// TestConfigEnvValues: every kind of key set by its variable.
func TestConfigEnvValues(t *testing.T) {
	env := []string{
		"WSGATE_CLIENT_CHANNEL_LIMIT=7",
		"WSGATE_CLIENT_ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN=true",
		"WSGATE_CLIENT_PING_INTERVAL=40s",
		"WSGATE_CLIENT_ALLOWED_ORIGINS=https://a.example https://b.example",
		`WSGATE_CHANNEL_NAMESPACES=[{"name":"env","history_size":5,"history_ttl":"1m","allow_subscribe_for_client":true}]`,
		"WSGATE_CHANNEL_MAX_HISTORY_BYTES=1024",
		"WSGATE_SHUTDOWN_DRAIN_PERIOD=1500ms",
		"WSGATE_BROKER_NATS_URL=nats://127.0.0.1:4222",
	}
	st, _, err := loadSettings(configFile(t, "c.json", minimalJSON), env, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	c := st.Client
	want := wsgate.Namespace{Name: "env", ChannelOptions: wsgate.ChannelOptions{HistorySize: 5,
		HistoryTTL: wsgate.Duration(time.Minute), AllowSubscribeForClient: true}}
	if c.ChannelLimit != 7 || !c.AllowAnonymousConnectWithoutToken || time.Duration(c.PingInterval) != 40*time.Second ||
		!reflect.DeepEqual(c.AllowedOrigins, []string{"https://a.example", "https://b.example"}) ||
		!reflect.DeepEqual(st.Channel.Namespaces, []wsgate.Namespace{want}) || st.Channel.MaxHistoryBytes != 1024 ||
		time.Duration(st.Shutdown.DrainPeriod) != 1500*time.Millisecond || st.Broker.NATS.URL != "nats://127.0.0.1:4222" {
		t.Fatalf("%+v", st)
	}
	// A list as JSON too.
	st, _, err = loadSettings(configFile(t, "c.json", minimalJSON), []string{`WSGATE_CLIENT_ALLOWED_ORIGINS=["*"]`}, nil, false)
	if err != nil || !reflect.DeepEqual(st.Client.AllowedOrigins, []string{"*"}) {
		t.Fatalf("allowed_origins as JSON: %v %q", err, st.Client.AllowedOrigins)
	}
}

// TestConfigErrorsNameTheKey: an unknown key or a bad value, in a file,
// a variable or a flag, is an error naming the key (with its path).
func TestConfigErrorsNameTheKey(t *testing.T) {
	base := `"client":{"token":{"hmac_secret_key":"s"}},"http_api":{"key":"k"}`
	for _, c := range []struct {
		file, name string // the file's body and name
		env        []string
		flags      map[string]string
		want       string
	}{
		{file: `{` + base + `,"nope":1}`, want: "nope: unknown key"},
		{file: `{` + base + `,"listen":{"websocket":":1","bogus":true}}`, want: "listen.bogus: unknown key"},
		{file: `{` + base + `,"channel":{"namespaces":[{"name":"a"},{"name":"b","histry_size":3}]}}`, want: "channel.namespaces[1].histry_size: unknown key"},
		{file: `{` + base + `,"channel":{"namespaces":[{"name":"a","history_ttl":"soon"}]}}`, want: `channel.namespaces[0].history_ttl: want a duration such as "25s", got "soon"`},
		{file: `{` + base + `,"shutdown":{"timeout":30}}`, want: `shutdown.timeout: want a duration such as "25s", got 30`},
		{file: `{` + base + `,"client":{"channel_limit":1.5}}`, want: "client.channel_limit: want an integer, got 1.5"},
		{file: `{` + base + `,"http_api":{"insecure":"yes"}}`, want: `http_api.insecure: want true or false, got "yes"`},
		{file: `{` + base + `,"client":{"allowed_origins":"*"}}`, want: `client.allowed_origins: want a list, got "*"`},
		{file: `{` + base + `,"client":"x"}`, want: `client: want a section`},
		{file: `{` + base + `} {}`, want: "data after the top-level value"},
		{file: "client:\n  token:\n    hmac_secret_key: s\n  pong_timeout: 8\n", name: "c.yaml", want: `client.pong_timeout: want a duration such as "25s", got 8`},
		{file: "http_api:\n  key: 123\n", name: "c.yml", want: `http_api.key: want a string (quoted), got 123`},
		{file: "http_api:\n  key: k\n  7: x\n", name: "c.yml", want: `http_api: key 7 is not a string`},
		{file: `{` + base + `}`, env: []string{"WSGATE_CLIENT_TOKEN_HMAC_SECRET=s"}, want: "WSGATE_CLIENT_TOKEN_HMAC_SECRET: no such key"},
		{file: `{` + base + `}`, env: []string{"WSGATE_CLIENT=x"}, want: "WSGATE_CLIENT: no such key"},
		{file: `{` + base + `}`, env: []string{"WSGATE_CLIENT_CHANNEL_LIMIT=many"}, want: `WSGATE_CLIENT_CHANNEL_LIMIT: client.channel_limit: want an integer, got "many"`},
		{file: `{` + base + `}`, env: []string{"WSGATE_HTTP_API_INSECURE=maybe"}, want: `http_api.insecure: want true or false, got "maybe"`},
		{file: `{` + base + `}`, env: []string{"WSGATE_CHANNEL_NAMESPACES=news"}, want: "channel.namespaces: want a JSON list"},
		{file: `{` + base + `}`, env: []string{`WSGATE_CHANNEL_NAMESPACES=[{"name":"a","x":1}]`}, want: "channel.namespaces[0].x: unknown key"},
		{file: `{` + base + `}`, flags: map[string]string{"shutdown.drain_period": "fast"}, want: `flag -drain-period: shutdown.drain_period: want a duration`},
		{file: `{` + base + `}`, flags: map[string]string{"shutdown.drain_period": "40s"}, want: "shutdown.drain_period (40s) must be below shutdown.timeout (30s)"},
		{file: `{` + base + `,"client":{"channel_limit":-1}}`, want: "client.channel_limit must not be negative"},
		{file: `{` + base + `,"client":{"pong_timeout":"30s"}}`, want: "client.pong_timeout must be below client.ping_interval"},
		{file: `{"http_api":{"key":"k"}}`, want: "client.token needs hmac_secret_key"},
		{file: `{` + base + `,"listen":{"api":""}}`, want: "listen.api: empty"},
	} {
		name := c.name
		if name == "" {
			name = "c.json"
		}
		// The base keys come first; a later "client" or "http_api" in the
		// same object replaces them (the decoder sees the last one), so
		// the cases that set one repeat the token.
		body := strings.Replace(c.file, `,"client":{`, `,"client":{"token":{"hmac_secret_key":"s"},`, 1)
		_, _, err := loadSettings(configFile(t, name, body), c.env, c.flags, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q env %q flags %v: error %v, want one containing %q", name, c.file, c.env, c.flags, err, c.want)
		}
	}
}

// TestConfigEnvNames: every key's variable is distinct, and the
// variables of the gateway's well-known keys are Centrifugo's with
// WSGATE_ for CENTRIFUGO_.
func TestConfigEnvNames(t *testing.T) {
	seen := map[string]string{}
	for _, l := range settingsLeaves {
		n := envName(l.path)
		if other, dup := seen[n]; dup {
			t.Fatalf("%s and %s share variable %s", other, l.path, n)
		}
		seen[n] = l.path
	}
	for _, n := range []string{"WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY", "WSGATE_HTTP_API_KEY", "WSGATE_CLIENT_ALLOWED_ORIGINS",
		"WSGATE_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE", "WSGATE_CHANNEL_NAMESPACES", "WSGATE_SHUTDOWN_TIMEOUT"} {
		if seen[n] == "" {
			t.Errorf("no key for %s", n)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("%d keys: the walk missed some", len(seen))
	}
}

// TestGenConfig: genconfig's file passes checkconfig, has a fresh random
// HMAC secret and API key each time, and holds the gateway's defaults;
// without a file the gateway runs with the same configuration.
func TestGenConfig(t *testing.T) {
	var out1, out2, errb bytes.Buffer
	if code := runGenConfig(nil, &out1, &errb); code != 0 {
		t.Fatalf("genconfig: %d %s", code, errb.String())
	}
	runGenConfig(nil, &out2, &errb)
	if !strings.HasPrefix(out1.String(), "# wsgate configuration") || strings.Count(out1.String(), "\n# ") < 5 {
		t.Fatalf("genconfig output is not a commented file:\n%s", out1.String())
	}
	f1, f2 := configFile(t, "g1.yaml", out1.String()), configFile(t, "g2.yaml", out2.String())
	var stdout bytes.Buffer
	if code := runCheckConfig([]string{"-config", f1}, nil, &stdout, &errb); code != 0 || !strings.Contains(stdout.String(), "ok") {
		t.Fatalf("checkconfig of genconfig's file: %d %s %s", code, stdout.String(), errb.String())
	}
	s1, _, err1 := loadSettings(f1, nil, nil, false)
	s2, _, err2 := loadSettings(f2, nil, nil, false)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	k1, k2 := s1.Client.Token.HMACSecretKey, s2.Client.Token.HMACSecretKey
	if len(k1) != 32 || k1 == k2 || len(s1.HTTPAPI.Key) != 32 || s1.HTTPAPI.Key == s2.HTTPAPI.Key || k1 == s1.HTTPAPI.Key {
		t.Fatalf("secrets %q %q, API keys %q %q: want fresh random ones", k1, k2, s1.HTTPAPI.Key, s2.HTTPAPI.Key)
	}
	c := s1.Client
	if time.Duration(c.PingInterval) != wsgate.DefaultPingInterval || time.Duration(c.PongTimeout) != wsgate.DefaultPongTimeout ||
		time.Duration(c.StaleCloseDelay) != wsgate.DefaultStaleCloseDelay || c.ChannelLimit != wsgate.DefaultChannelLimit ||
		c.CommandRateLimit != wsgate.DefaultCommandRateLimit || c.MaxCommandSize != wsgate.DefaultMaxCommandSize ||
		c.MaxBatchSize != wsgate.DefaultMaxBatchSize || s1.Channel.MaxHistoryBytes != wsgate.DefaultMaxHistoryBytes ||
		!reflect.DeepEqual(s1.Listen, defaultSettings().Listen) || s1.Shutdown != defaultSettings().Shutdown {
		t.Fatalf("genconfig's values differ from the defaults: %+v", s1)
	}
	// Without -config: the same file, secrets generated.
	s0, generated, err := loadSettings("", nil, nil, true)
	if err != nil || !generated || s0.Client.Token.HMACSecretKey == "" {
		t.Fatalf("embedded default: %v generated=%v", err, generated)
	}
	s0.Client.Token.HMACSecretKey, s0.HTTPAPI.Key = k1, s1.HTTPAPI.Key
	if !reflect.DeepEqual(s0, s1) {
		t.Fatalf("embedded default %+v\ndiffers from genconfig's %+v", s0, s1)
	}
}

// TestCheckConfigAndGenToken: checkconfig's exit codes and messages, and
// a token from gentoken that verifies with the configured secret,
// audience and issuer.
func TestCheckConfigAndGenToken(t *testing.T) {
	good := configFile(t, "good.json", `{"client":{"token":{"hmac_secret_key":"sekret","audience":"aud1","issuer":"iss1"}},"http_api":{"key":"k"}}`)
	bad := configFile(t, "bad.yaml", "client:\n  token:\n    hmac_secret_key: s\n  channel_limt: 3\nhttp_api:\n  key: k\n")
	var out, errb bytes.Buffer
	if code := runCheckConfig([]string{"-config", good}, nil, &out, &errb); code != 0 {
		t.Fatalf("checkconfig good: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := runCheckConfig([]string{"-config", bad}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "client.channel_limt: unknown key") {
		t.Fatalf("checkconfig bad: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := runCheckConfig([]string{"-config", good}, []string{"WSGATE_SHUTDOWN_TIMEOUT=never"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "WSGATE_SHUTDOWN_TIMEOUT") {
		t.Fatalf("checkconfig with a bad variable: %d %q", code, errb.String())
	}
	if code := runCheckConfig([]string{"-config", good, "extra"}, nil, &out, &errb); code != exitUsage {
		t.Fatalf("checkconfig with an extra argument: %d", code)
	}

	out.Reset()
	if code := runGenToken([]string{"-user", "alice", "-ttl", "1h", "-config", good}, nil, &out, &errb); code != 0 {
		t.Fatalf("gentoken: %d %s", code, errb.String())
	}
	tok, err := jwt.Parse(strings.TrimSpace(out.String()), func(*jwt.Token) (any, error) { return []byte("sekret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience("aud1"), jwt.WithIssuer("iss1"), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("gentoken's token: %v", err)
	}
	sub, _ := tok.Claims.GetSubject()
	exp, _ := tok.Claims.GetExpirationTime()
	if sub != "alice" || time.Until(exp.Time) > time.Hour || time.Until(exp.Time) < 59*time.Minute {
		t.Fatalf("claims %v", tok.Claims)
	}
	errb.Reset()
	if code := runGenToken([]string{"-user", "alice"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no HMAC secret") {
		t.Fatalf("gentoken without a secret: %d %q", code, errb.String())
	}
	out.Reset()
	if code := runGenToken([]string{"-user", "bob"}, []string{"WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY=envsecret"}, &out, &errb); code != 0 {
		t.Fatalf("gentoken with the secret from the environment: %d %s", code, errb.String())
	}
	if _, err := jwt.Parse(strings.TrimSpace(out.String()), func(*jwt.Token) (any, error) { return []byte("envsecret"), nil }); err != nil {
		t.Fatalf("token signed with the variable's secret: %v", err)
	}
	if code := runGenToken(nil, nil, &out, &errb); code != exitUsage {
		t.Fatalf("gentoken without -user: %d", code)
	}
}

package main

// The command's configuration: a file (JSON, or YAML), WSGATE_*
// environment variables and flags, in that order of strength (flags
// last, so they win), over the defaults. All three name keys the same
// way, by their path in the file ("client.token.hmac_secret_key"), and
// are decoded by one walker over the settings struct's json tags, so that
// every source reports an unknown key or a bad value with the key's path.

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate"
)

// defaultConfig is the configuration used without -config, and the file
// genconfig prints (with a random HMAC secret and API key).
//
//go:embed default_config.yaml
var defaultConfig []byte

// envPrefix starts the environment variable of every key.
const envPrefix = "WSGATE_"

// settings is everything the command reads from its configuration: the
// gateway's keys (wsgate.Config, with Centrifugo v6's names) and the
// process's own.
type settings struct {
	wsgate.Config
	Listen   listenSettings   `json:"listen"`
	Node     nodeSettings     `json:"node"`
	Broker   brokerSettings   `json:"broker"`
	Shutdown shutdownSettings `json:"shutdown"`
}

// listenSettings holds the listen addresses ("host:port").
type listenSettings struct {
	WebSocket string `json:"websocket"` // WebSocket clients
	API       string `json:"api"`       // the server HTTP API and GET /ready
	Admin     string `json:"admin"`     // /stats and /debug/pprof/; empty: off
}

type nodeSettings struct {
	Name string `json:"name"` // in /api/info; empty: the host name
}

type brokerSettings struct {
	NATS natsSettings `json:"nats"`
}

type natsSettings struct {
	URL string `json:"url"` // comma-separated NATS URLs; empty: no NATS
}

// shutdownSettings bound the drain that SIGTERM or SIGINT starts.
type shutdownSettings struct {
	// DrainPeriod is the time over which the clients are disconnected.
	DrainPeriod wsgate.Duration `json:"drain_period"`
	// Timeout bounds the whole shutdown: the process exits by then.
	Timeout wsgate.Duration `json:"timeout"`
}

// Defaults of the command's own keys (the gateway's are wsgate.Default*).
const (
	defaultWebSocketAddr   = ":8000"
	defaultAPIAddr         = ":9000"
	defaultAdminAddr       = "127.0.0.1:6060"
	defaultDrainPeriod     = 5 * time.Second
	defaultShutdownTimeout = 30 * time.Second
)

func defaultSettings() settings {
	return settings{
		Listen:   listenSettings{WebSocket: defaultWebSocketAddr, API: defaultAPIAddr, Admin: defaultAdminAddr},
		Shutdown: shutdownSettings{DrainPeriod: wsgate.Duration(defaultDrainPeriod), Timeout: wsgate.Duration(defaultShutdownTimeout)},
	}
}

// loadSettings reads the configuration: the defaults, then file (the
// embedded default when empty), then the WSGATE_* variables of environ,
// then flags (key → value). Without a file, an HMAC secret and an API key
// that are still empty get random values when generate is set (apiKey
// reports that the API key was made up). The result is checked.
func loadSettings(file string, environ []string, flags map[string]string, generate bool) (st settings, apiKey bool, err error) {
	st = defaultSettings()
	name, b := "embedded default configuration", defaultConfig
	if file != "" {
		name = file
		if b, err = readFile(file); err != nil {
			return st, false, err
		}
	}
	doc, err := parseDocument(b, file == "" || isYAML(file))
	if err != nil {
		return st, false, fmt.Errorf("%s: %w", name, err)
	}
	if err := decode(reflect.ValueOf(&st).Elem(), doc, ""); err != nil {
		return st, false, fmt.Errorf("%s: %w", name, err)
	}
	if err := applyEnv(&st, environ); err != nil {
		return st, false, err
	}
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		if err := setKey(&st, k, flags[k]); err != nil {
			return st, false, fmt.Errorf("flag -%s: %w", flagOf(k), err)
		}
	}
	if file == "" && generate {
		if st.Client.Token.HMACSecretKey == "" {
			st.Client.Token.HMACSecretKey = random()
		}
		if st.HTTPAPI.Key == "" && !st.HTTPAPI.Insecure {
			st.HTTPAPI.Key, apiKey = random(), true
		}
	}
	return st, apiKey, st.check()
}

// check reports the first bad value, naming its key.
func (st *settings) check() error {
	sh := st.Shutdown
	switch {
	case st.Listen.WebSocket == "":
		return errors.New("listen.websocket: empty")
	case st.Listen.API == "":
		return errors.New("listen.api: empty")
	case sh.Timeout <= 0:
		return errors.New("shutdown.timeout: must be above 0")
	case sh.DrainPeriod < 0:
		return errors.New("shutdown.drain_period: must not be negative")
	case sh.DrainPeriod >= sh.Timeout:
		return fmt.Errorf("shutdown.drain_period (%v) must be below shutdown.timeout (%v): the clients need time to close",
			time.Duration(sh.DrainPeriod), time.Duration(sh.Timeout))
	}
	return st.Config.Check()
}

func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return b, nil
}

// isYAML reports whether a file name says YAML (.yaml, .yml); anything
// else is read as JSON.
func isYAML(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}

// parseDocument parses a JSON or YAML document into maps, slices and
// scalars (JSON numbers as json.Number); an empty YAML document is an
// empty map.
func parseDocument(b []byte, isYAML bool) (any, error) {
	var doc any
	if isYAML {
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, err
		}
		if doc == nil {
			doc = map[string]any{}
		}
		return doc, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("JSON: data after the top-level value")
	}
	return doc, nil
}

var durationType = reflect.TypeFor[wsgate.Duration]()

// decode stores the parsed value v in dst, whose key path is path; an
// unknown key or a value of the wrong kind is an error naming its path.
// A null leaves the zero value.
func decode(dst reflect.Value, v any, path string) error {
	if v == nil {
		dst.SetZero()
		return nil
	}
	t := dst.Type()
	switch {
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a duration such as \"25s\", got %s", path, show(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s: want a duration such as \"25s\", got %q", path, s)
		}
		dst.SetInt(int64(d))
		return nil
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if mk, isMap := v.(map[any]any); isMap {
			for k := range mk {
				if _, ok := k.(string); !ok {
					return fmt.Errorf("%s: key %v is not a string", orTop(path), k)
				}
			}
		}
		if !ok {
			return fmt.Errorf("%s: want a section (an object of keys), got %s", orTop(path), show(v))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			f, ok := fieldByKey(t, k)
			if !ok {
				return fmt.Errorf("%s: unknown key", join(path, k))
			}
			if err := decode(dst.FieldByIndex(f.Index), m[k], join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want a list, got %s", path, show(v))
		}
		s := reflect.MakeSlice(t, len(l), len(l))
		for i, e := range l {
			if err := decode(s.Index(i), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
		return nil
	case t.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string (quoted), got %s", path, show(v))
		}
		dst.SetString(s)
		return nil
	case t.Kind() == reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s: want true or false, got %s", path, show(v))
		}
		dst.SetBool(b)
		return nil
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, ok := integer(v)
		if !ok || dst.OverflowInt(n) {
			return fmt.Errorf("%s: want an integer, got %s", path, show(v))
		}
		dst.SetInt(n)
		return nil
	}
	return fmt.Errorf("%s: no decoder for %v", path, t) // a settings field of a new type
}

// integer returns v as an int64 if it is a whole number that fits.
func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	}
	return 0, false
}

// show describes a parsed value in an error.
func show(v any) string {
	switch v.(type) {
	case map[string]any, map[any]any:
		return "a section"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprint(v)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orTop(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// keyFields lists the fields of struct type t that are keys: the exported
// fields, those of embedded structs included (an embedded struct's keys
// are its parent's, as in encoding/json).
func keyFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for _, f := range reflect.VisibleFields(t) {
		if f.IsExported() && !f.Anonymous {
			out = append(out, f)
		}
	}
	return out
}

// keyName is the key of a struct field: its json tag's name.
func keyName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// fieldByKey finds the field of struct type t with key k.
func fieldByKey(t reflect.Type, k string) (reflect.StructField, bool) {
	for _, f := range keyFields(t) {
		if keyName(f) == k {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// leaf is a key that an environment variable or a flag sets: a value
// that is not a section.
type leaf struct {
	path  string
	index []int // of the field in settings
}

// leaves lists the keys of type t (settings) that hold values, sections
// walked into; a list of sections (channel.namespaces) is one leaf.
func leaves(t reflect.Type, path string, index []int) []leaf {
	var out []leaf
	for _, f := range keyFields(t) {
		p := join(path, keyName(f))
		idx := append(slices.Clone(index), f.Index...)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			out = append(out, leaves(f.Type, p, idx)...)
			continue
		}
		out = append(out, leaf{path: p, index: idx})
	}
	return out
}

var settingsLeaves = leaves(reflect.TypeFor[settings](), "", nil)

// envName is the environment variable of key path: WSGATE_, then the
// path in upper case with "_" for ".".
func envName(path string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets the keys named by the WSGATE_* variables of environ; a
// variable that names no key is an error.
func applyEnv(st *settings, environ []string) error {
	byName := make(map[string]string, len(settingsLeaves))
	for _, l := range settingsLeaves {
		byName[envName(l.path)] = l.path
	}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		path, ok := byName[name]
		if !ok {
			return fmt.Errorf("environment variable %s: no such key (wsgate genconfig lists the keys)", name)
		}
		if err := setKey(st, path, val); err != nil {
			return fmt.Errorf("environment variable %s: %w", name, err)
		}
	}
	return nil
}

// setKey sets the key path (a leaf) from its text: a string as it is, a
// boolean as strconv.ParseBool reads it, an integer, a duration ("25s");
// a list as JSON ("[...]") or, for a list of strings, as words separated
// by spaces.
func setKey(st *settings, path, text string) error {
	i := slices.IndexFunc(settingsLeaves, func(l leaf) bool { return l.path == path })
	if i < 0 {
		return fmt.Errorf("%s: unknown key", path)
	}
	dst := reflect.ValueOf(st).Elem().FieldByIndex(settingsLeaves[i].index)
	var v any = text
	switch t := dst.Type(); {
	case t == durationType:
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%s: want true or false, got %q", path, text)
		}
		v = b
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: want an integer, got %q", path, text)
		}
		v = n
	case t.Kind() == reflect.Slice && strings.HasPrefix(strings.TrimSpace(text), "["):
		doc, err := parseDocument([]byte(text), false)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		v = doc
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		var l []any
		for _, w := range strings.Fields(text) {
			l = append(l, w)
		}
		v = l
		if l == nil {
			v = []any{}
		}
	case t.Kind() == reflect.Slice:
		return fmt.Errorf("%s: want a JSON list", path)
	}
	return decode(dst, v, path)
}

// usage is the gateway's -h.
func usage() {
	fmt.Fprintf(flag.CommandLine.Output(), `wsgate: a WebSocket gateway speaking Centrifugo's client protocol and server HTTP API.

Usage:
  wsgate [flags]                     run the gateway
  wsgate checkconfig [-config FILE]  check a configuration: exit 0, or 1 naming the bad key
  wsgate genconfig > wsgate.yaml     print a commented configuration file
  wsgate gentoken -user ID [-ttl D] [-config FILE]
                                     print a connection token signed with the configured HMAC secret
  wsgate echo [flags]                the echo server of the benchmarks (wsgate echo -h)

Configuration, strongest first: flags, WSGATE_* environment variables, the
file (-config; YAML for .yaml/.yml, else JSON; Centrifugo v6 key names),
the defaults. Without -config the embedded default configuration is used
(the file genconfig prints) with a random HMAC secret and API key unless
given. Every key has an environment variable: WSGATE_ and the key's path in
upper case with "_" for ".": client.token.hmac_secret_key is
WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY (lists: words separated by spaces, or
JSON). An unknown key, in the file or as a WSGATE_* variable, is an error.

SIGTERM or SIGINT drains the gateway: GET /ready answers 503, new
connections are refused, and the clients are disconnected with 3001
"shutdown" (they reconnect, to another node) spread over
shutdown.drain_period; the process exits within shutdown.timeout, or at
once on a second signal.

Flags:
`)
	flag.PrintDefaults()
}

// keyFlags are the flags that set a key: the most used ones.
var keyFlags = []struct{ name, key, usage string }{
	{"addr", "listen.websocket", "WebSocket listen `address` (path " + wsgate.WebSocketPath + ")"},
	{"api-addr", "listen.api", "server HTTP API listen `address` (/api/<method>, GET /ready)"},
	{"admin", "listen.admin", "admin `address` for /metrics, /healthz, /readyz, /stats and /debug/pprof/ (empty: off)"},
	{"token-hmac-secret", "client.token.hmac_secret_key", "HMAC `secret` of connection tokens"},
	{"api-key", "http_api.key", "server API `key`"},
	{"nats", "broker.nats.url", "NATS server `URLs`, comma-separated: channels, history and node-wide API operations shared by every node on it (JetStream needed; empty: this node alone)"},
	{"name", "node.name", "node `name` in /api/info (empty: the host name)"},
	{"trusted-proxies", "client.trusted_proxies", "`addresses` or CIDRs of the proxies whose Forwarded and X-Forwarded-* headers are believed, space-separated"},
	{"drain-period", "shutdown.drain_period", "on SIGTERM/SIGINT, disconnect the clients spread over this `duration`"},
	{"shutdown-timeout", "shutdown.timeout", "exit at the latest this `duration` after SIGTERM/SIGINT"},
}

func flagOf(key string) string {
	for _, f := range keyFlags {
		if f.key == key {
			return f.name
		}
	}
	return key
}

// keyFlag is a flag that sets a key; it records the value given.
type keyFlag struct {
	key, def string
	set      map[string]string
}

func (f *keyFlag) String() string {
	if f == nil {
		return ""
	}
	return f.def
}

func (f *keyFlag) Set(s string) error {
	f.set[f.key] = s
	return nil
}

// bindKeyFlags defines keyFlags on fs and returns the map that receives
// the values given (key → value), for loadSettings. The defaults shown
// are those of the embedded configuration.
func bindKeyFlags(fs *flag.FlagSet) map[string]string {
	set := map[string]string{}
	def := defaultSettings()
	if doc, err := parseDocument(defaultConfig, true); err == nil {
		_ = decode(reflect.ValueOf(&def).Elem(), doc, "")
	}
	for _, kf := range keyFlags {
		i := slices.IndexFunc(settingsLeaves, func(l leaf) bool { return l.path == kf.key })
		v := reflect.ValueOf(def).FieldByIndex(settingsLeaves[i].index).Interface()
		d := fmt.Sprint(v)
		if dd, ok := v.(wsgate.Duration); ok {
			d = time.Duration(dd).String()
		}
		fs.Var(&keyFlag{key: kf.key, def: d, set: set}, kf.name, kf.usage+" (key "+kf.key+", $"+envName(kf.key)+")")
	}
	return set
}

func random() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

package wsgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Config is the gateway's configuration: the subset of Centrifugo v6's
// configuration keys that wsgate implements, with the same JSON names, so
// that a Centrifugo config file limited to these keys works unchanged. A
// key wsgate does not know is an error (see ParseConfig).
type Config struct {
	Client  ClientConfig  `json:"client"`
	Channel ChannelConfig `json:"channel"`
	HTTPAPI HTTPAPIConfig `json:"http_api"`
}

// ClientConfig holds the "client" section.
type ClientConfig struct {
	Token             TokenConfig    `json:"token"`
	SubscriptionToken SubTokenConfig `json:"subscription_token"`
	// AllowedOrigins lists Origin values accepted besides the same origin
	// ("*": any).
	AllowedOrigins []string `json:"allowed_origins"`
	// TrustedProxies is wsgate's own: the addresses and networks (CIDR) of
	// the proxies whose Forwarded and X-Forwarded-* headers are believed
	// for the client's address and the origin check (see
	// loop.Options.TrustedProxies). Default: none.
	TrustedProxies []string `json:"trusted_proxies"`
	// PingInterval is the period of the protocol's server pings. Default
	// 25s; negative disables pings (and the pong check).
	PingInterval Duration `json:"ping_interval"`
	// PongTimeout is how long after a ping a client may stay silent before
	// it is disconnected with 3012 "no pong". Default 8s.
	PongTimeout Duration `json:"pong_timeout"`
	// ExpiredCloseDelay is how long a connection whose token expired may
	// stay without a refresh before it is closed with 3005. Default 25s.
	ExpiredCloseDelay Duration `json:"expired_close_delay"`
	// ExpiredSubCloseDelay is the same for subscription tokens (3006).
	// Default 25s.
	ExpiredSubCloseDelay Duration `json:"expired_sub_close_delay"`
	// StaleCloseDelay is how long an upgraded connection may stay without
	// a successful connect command before it is closed with 3502 "stale".
	// Default 10s.
	StaleCloseDelay Duration `json:"stale_close_delay"`
	// ChannelLimit is the maximum number of channels one connection may be
	// subscribed to. Default 128.
	ChannelLimit int `json:"channel_limit"`
	// HistoryMaxPublicationLimit caps the publications of one history
	// command. Default 300.
	HistoryMaxPublicationLimit int `json:"history_max_publication_limit"`
	// RecoveryMaxPublicationLimit caps the publications recovered by one
	// subscribe command. Default 300.
	RecoveryMaxPublicationLimit int `json:"recovery_max_publication_limit"`
	// AllowAnonymousConnectWithoutToken lets a connect command without a
	// token in as an anonymous user ("").
	AllowAnonymousConnectWithoutToken bool `json:"allow_anonymous_connect_without_token"`
	// ConnectionLimit answers upgrades beyond this many connections with
	// 503. Default 0: no limit.
	ConnectionLimit int `json:"connection_limit"`
	// CommandRateLimit is wsgate's own: commands per second one connection
	// may send; beyond it commands are answered with error 111. Default
	// 1000, so that an SDK resubscribing hundreds of channels after a
	// reconnect is not refused (Centrifugo has no such limit); negative:
	// no limit.
	CommandRateLimit int `json:"command_rate_limit"`
	// MaxCommandSize is wsgate's own: the largest WebSocket message (a
	// batch of commands) accepted, in bytes; larger ones are refused with
	// 1009. Default 65536.
	MaxCommandSize int `json:"max_command_size"`
	// MaxBatchSize is wsgate's own: the most commands one message may
	// carry; more disconnect with 3501 before any of them runs. Default
	// 100.
	MaxBatchSize int `json:"max_batch_size"`
}

// TokenConfig holds client.token: the keys that verify connection tokens.
type TokenConfig struct {
	HMACSecretKey  string `json:"hmac_secret_key"`
	RSAPublicKey   string `json:"rsa_public_key"`
	ECDSAPublicKey string `json:"ecdsa_public_key"`
	Audience       string `json:"audience"`
	Issuer         string `json:"issuer"`
}

// SubTokenConfig holds client.subscription_token. When Enabled is false,
// subscription tokens are verified with client.token's keys.
type SubTokenConfig struct {
	Enabled        bool   `json:"enabled"`
	HMACSecretKey  string `json:"hmac_secret_key"`
	RSAPublicKey   string `json:"rsa_public_key"`
	ECDSAPublicKey string `json:"ecdsa_public_key"`
	Audience       string `json:"audience"`
	Issuer         string `json:"issuer"`
}

// ChannelConfig holds the "channel" section.
type ChannelConfig struct {
	WithoutNamespace ChannelOptions `json:"without_namespace"`
	Namespaces       []Namespace    `json:"namespaces"`
	// MaxHistoryBytes is wsgate's own: the cap on the payload bytes held
	// in history across all channels; the oldest publications of the
	// channel being published to are dropped first. Default 64 MiB.
	MaxHistoryBytes int64 `json:"max_history_bytes"`
}

// Namespace is a named set of channel options; channel "ns:rest" belongs
// to namespace "ns".
type Namespace struct {
	Name string `json:"name"`
	ChannelOptions
}

// ChannelOptions are a namespace's options.
type ChannelOptions struct {
	HistorySize int      `json:"history_size"`
	HistoryTTL  Duration `json:"history_ttl"`
	// ForcePositioning and AllowPositioning: see ForceRecovery.
	ForcePositioning bool `json:"force_positioning"`
	AllowPositioning bool `json:"allow_positioning"`
	// ForceRecovery turns recovery on for every subscription;
	// AllowRecovery turns it on for subscriptions that ask for it
	// (recoverable). Both need history (size and TTL).
	ForceRecovery              bool `json:"force_recovery"`
	AllowRecovery              bool `json:"allow_recovery"`
	AllowSubscribeForClient    bool `json:"allow_subscribe_for_client"`
	AllowSubscribeForAnonymous bool `json:"allow_subscribe_for_anonymous"`
	AllowPublishForClient      bool `json:"allow_publish_for_client"`
	AllowPublishForSubscriber  bool `json:"allow_publish_for_subscriber"`
	AllowPublishForAnonymous   bool `json:"allow_publish_for_anonymous"`
	AllowHistoryForClient      bool `json:"allow_history_for_client"`
	AllowHistoryForSubscriber  bool `json:"allow_history_for_subscriber"`
	AllowHistoryForAnonymous   bool `json:"allow_history_for_anonymous"`
	// ConflationTag is wsgate's own: the publication tag whose value is
	// the conflation key of the channel's messages; a connection subscribed
	// to such a channel gets the latest message per key when it is slow,
	// instead of being disconnected.
	ConflationTag string `json:"conflation_tag"`
}

func (o *ChannelOptions) history() bool { return o.HistorySize > 0 && o.HistoryTTL > 0 }

// HTTPAPIConfig holds http_api.
type HTTPAPIConfig struct {
	// Key is the API key: requests carry it in X-API-Key or in
	// "Authorization: apikey <key>". Empty: no check (only with Insecure).
	Key string `json:"key"`
	// Insecure lets requests in without a key.
	Insecure bool `json:"insecure"`
}

// Duration is a time.Duration written as a Go duration string ("25s",
// "5m") in JSON.
type Duration time.Duration

// UnmarshalJSON reads "25s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a duration string such as \"25s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config defaults.
const (
	DefaultPingInterval      = 25 * time.Second
	DefaultPongTimeout       = 8 * time.Second
	DefaultExpiredCloseDelay = 25 * time.Second
	DefaultStaleCloseDelay   = 10 * time.Second
	DefaultChannelLimit      = 128
	DefaultPublicationLimit  = 300
	DefaultCommandRateLimit  = 1000
	DefaultMaxCommandSize    = 64 << 10
	DefaultMaxBatchSize      = 100
	DefaultMaxHistoryBytes   = 64 << 20
)

// maxCommandSize is the largest client.max_command_size: the engine
// keeps up to twice a message plus 64 KiB pending per connection
// (loop.Options.MaxPendingBytes), and at most 1 GiB.
const maxCommandSize = (1<<30 - 1<<16) / 2

// ParseConfig reads a JSON configuration. A key that Config does not have
// is an error naming it.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("wsgate: config: %w", err)
	}
	return c, nil
}

// LoadConfig reads and parses the JSON configuration file path.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(b)
}

// ParseTrustedProxies parses addresses ("10.0.0.7", "::1") and networks
// ("10.0.0.0/8") into the prefixes of loop.Options.TrustedProxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither an address nor a network", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// normalize fills in the defaults and checks the values.
func (c Config) normalize() (Config, error) {
	cl := &c.Client
	if cl.PingInterval == 0 {
		cl.PingInterval = Duration(DefaultPingInterval)
	}
	if cl.PongTimeout == 0 {
		cl.PongTimeout = Duration(DefaultPongTimeout)
	}
	if cl.ExpiredCloseDelay == 0 {
		cl.ExpiredCloseDelay = Duration(DefaultExpiredCloseDelay)
	}
	if cl.ExpiredSubCloseDelay == 0 {
		cl.ExpiredSubCloseDelay = Duration(DefaultExpiredCloseDelay)
	}
	if cl.StaleCloseDelay == 0 {
		cl.StaleCloseDelay = Duration(DefaultStaleCloseDelay)
	}
	if cl.ChannelLimit == 0 {
		cl.ChannelLimit = DefaultChannelLimit
	}
	if cl.HistoryMaxPublicationLimit == 0 {
		cl.HistoryMaxPublicationLimit = DefaultPublicationLimit
	}
	if cl.RecoveryMaxPublicationLimit == 0 {
		cl.RecoveryMaxPublicationLimit = DefaultPublicationLimit
	}
	if cl.CommandRateLimit == 0 {
		cl.CommandRateLimit = DefaultCommandRateLimit
	}
	if cl.MaxCommandSize == 0 {
		cl.MaxCommandSize = DefaultMaxCommandSize
	}
	if cl.MaxBatchSize == 0 {
		cl.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.Channel.MaxHistoryBytes == 0 {
		c.Channel.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	// Negative delays and sizes mean nothing (the sweep's unsigned
	// arithmetic would wrap them); a negative ping_interval or
	// command_rate_limit turns its feature off and is checked elsewhere.
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"client.pong_timeout", int64(cl.PongTimeout)},
		{"client.expired_close_delay", int64(cl.ExpiredCloseDelay)},
		{"client.expired_sub_close_delay", int64(cl.ExpiredSubCloseDelay)},
		{"client.stale_close_delay", int64(cl.StaleCloseDelay)},
		{"client.history_max_publication_limit", int64(cl.HistoryMaxPublicationLimit)},
		{"client.recovery_max_publication_limit", int64(cl.RecoveryMaxPublicationLimit)},
		{"channel.max_history_bytes", c.Channel.MaxHistoryBytes},
	} {
		if v.n < 0 {
			return c, fmt.Errorf("wsgate: config: %s must not be negative", v.key)
		}
	}
	if err := c.Channel.WithoutNamespace.check("channel.without_namespace"); err != nil {
		return c, err
	}
	seen := map[string]bool{}
	for i, ns := range c.Channel.Namespaces {
		switch {
		case ns.Name == "" || strings.Contains(ns.Name, ":"):
			return c, fmt.Errorf("wsgate: config: channel.namespaces: bad name %q", ns.Name)
		case seen[ns.Name]:
			return c, fmt.Errorf("wsgate: config: channel.namespaces: duplicate name %q", ns.Name)
		}
		seen[ns.Name] = true
		if err := ns.check(fmt.Sprintf("channel.namespaces[%d]", i)); err != nil {
			return c, err
		}
	}
	if _, err := ParseTrustedProxies(cl.TrustedProxies); err != nil {
		return c, fmt.Errorf("wsgate: config: client.trusted_proxies: %w", err)
	}
	switch {
	case cl.PingInterval > 0 && cl.PingInterval < Duration(time.Second):
		// The sweep counts whole seconds: it would never ping, while the
		// engine's idle timeout closes the silent connections.
		return c, errors.New("wsgate: config: client.ping_interval must be at least 1s (negative: no pings)")
	case cl.PingInterval > 0 && cl.PongTimeout >= cl.PingInterval:
		return c, errors.New("wsgate: config: client.pong_timeout must be below client.ping_interval")
	case cl.ChannelLimit < 0:
		return c, errors.New("wsgate: config: client.channel_limit must not be negative")
	case cl.MaxBatchSize < 0:
		return c, errors.New("wsgate: config: client.max_batch_size must not be negative")
	case cl.MaxCommandSize < 0:
		return c, errors.New("wsgate: config: client.max_command_size must not be negative")
	case cl.MaxCommandSize > maxCommandSize:
		return c, fmt.Errorf("wsgate: config: client.max_command_size must be at most %d", maxCommandSize)
	case cl.ConnectionLimit < 0:
		return c, errors.New("wsgate: config: client.connection_limit must not be negative")
	case cl.Token.HMACSecretKey == "" && cl.Token.RSAPublicKey == "" && cl.Token.ECDSAPublicKey == "" && !cl.AllowAnonymousConnectWithoutToken:
		return c, errors.New("wsgate: config: client.token needs hmac_secret_key, rsa_public_key or ecdsa_public_key")
	case c.HTTPAPI.Key == "" && !c.HTTPAPI.Insecure:
		return c, errors.New("wsgate: config: http_api.key is empty (set http_api.insecure to run the API without a key)")
	}
	return c, nil
}

// check reports a negative history setting of the options at key path.
func (o *ChannelOptions) check(path string) error {
	switch {
	case o.HistorySize < 0:
		return fmt.Errorf("wsgate: config: %s.history_size must not be negative", path)
	case o.HistoryTTL < 0:
		return fmt.Errorf("wsgate: config: %s.history_ttl must not be negative", path)
	}
	return nil
}

// Check reports what NewNode would refuse in the configuration, naming
// the key; nil if it is good.
func (c Config) Check() error {
	if _, err := c.normalize(); err != nil {
		return err
	}
	// The public keys are parsed as NewNode parses them.
	t := c.Client.Token
	if _, err := newVerifier("client.token", t.HMACSecretKey, t.RSAPublicKey, t.ECDSAPublicKey, t.Audience, t.Issuer); err != nil {
		return err
	}
	if st := c.Client.SubscriptionToken; st.Enabled {
		if _, err := newVerifier("client.subscription_token", st.HMACSecretKey, st.RSAPublicKey, st.ECDSAPublicKey, st.Audience, st.Issuer); err != nil {
			return err
		}
	}
	return nil
}

// options returns the options of channel name, or nil when its namespace
// does not exist.
func (c *Config) options(name string) *ChannelOptions {
	name = strings.TrimPrefix(name, privatePrefix)
	i := strings.IndexByte(name, ':')
	if i <= 0 {
		return &c.Channel.WithoutNamespace // ":x" too, as Centrifugo
	}
	ns := name[:i]
	for j := range c.Channel.Namespaces {
		if c.Channel.Namespaces[j].Name == ns {
			return &c.Channel.Namespaces[j].ChannelOptions
		}
	}
	return nil
}

// privatePrefix starts the name of a private channel, Centrifugo's
// default private_prefix: a client subscribes to one only with a
// subscription token, whatever its namespace allows. It is not part of
// the namespace ("$ns:rest" is in namespace "ns").
const privatePrefix = "$"

// isPrivate reports whether channel name is private (privatePrefix).
func isPrivate(name string) bool { return strings.HasPrefix(name, privatePrefix) }

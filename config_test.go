package wsgate

import (
	"strings"
	"testing"
	"time"
)

// TestConfigNegativeValues: a negative delay, limit or history setting is
// refused naming its key. Accepted, a negative pong_timeout wrapped in the
// sweep's arithmetic and closed every client with 3012 before its first
// ping, and a negative expired_close_delay closed connections before
// their token expired.
func TestConfigNegativeValues(t *testing.T) {
	neg := Duration(-time.Second)
	for _, c := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.Client.PongTimeout = neg }, "client.pong_timeout"},
		{func(c *Config) { c.Client.ExpiredCloseDelay = neg }, "client.expired_close_delay"},
		{func(c *Config) { c.Client.ExpiredSubCloseDelay = neg }, "client.expired_sub_close_delay"},
		{func(c *Config) { c.Client.StaleCloseDelay = neg }, "client.stale_close_delay"},
		{func(c *Config) { c.Client.HistoryMaxPublicationLimit = -1 }, "client.history_max_publication_limit"},
		{func(c *Config) { c.Client.RecoveryMaxPublicationLimit = -1 }, "client.recovery_max_publication_limit"},
		{func(c *Config) { c.Channel.MaxHistoryBytes = -1 }, "channel.max_history_bytes"},
		{func(c *Config) { c.Channel.WithoutNamespace.HistorySize = -1 }, "channel.without_namespace.history_size"},
		{func(c *Config) { c.Channel.WithoutNamespace.HistoryTTL = neg }, "channel.without_namespace.history_ttl"},
		{func(c *Config) {
			c.Channel.Namespaces = []Namespace{{Name: "a"}, {Name: "b", ChannelOptions: ChannelOptions{HistorySize: -5}}}
		}, "channel.namespaces[1].history_size"},
		{func(c *Config) {
			c.Channel.Namespaces = []Namespace{{Name: "a", ChannelOptions: ChannelOptions{HistoryTTL: neg}}}
		}, "channel.namespaces[0].history_ttl"},
	} {
		cfg := Config{}
		cfg.Client.Token.HMACSecretKey = "s"
		cfg.HTTPAPI.Key = "k"
		if err := cfg.Check(); err != nil {
			t.Fatalf("the base configuration: %v", err)
		}
		c.set(&cfg)
		err := cfg.Check()
		if err == nil || !strings.Contains(err.Error(), c.want+" must not be negative") {
			t.Errorf("%s negative: error %v, want one naming it", c.want, err)
		}
	}
	// Negative values that mean something stay accepted: no pings, no
	// command rate limit.
	cfg := Config{}
	cfg.Client.Token.HMACSecretKey = "s"
	cfg.HTTPAPI.Key = "k"
	cfg.Client.PingInterval = neg
	cfg.Client.CommandRateLimit = -1
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigSubSecondPingInterval: the sweep counts whole seconds, so a
// positive ping_interval below 1s sent no ping at all while the engine's
// idle timeout (twice interval plus pong_timeout) still ran: with 900ms
// and 500ms every client, answering or not, was closed with 1001 "idle
// timeout" 2.8 s after connecting. Such an interval is refused.
func TestConfigSubSecondPingInterval(t *testing.T) {
	cfg := Config{}
	cfg.Client.Token.HMACSecretKey = "s"
	cfg.HTTPAPI.Key = "k"
	cfg.Client.PingInterval = Duration(900 * time.Millisecond)
	cfg.Client.PongTimeout = Duration(500 * time.Millisecond)
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "client.ping_interval") {
		t.Fatalf("ping_interval 900ms: error %v, want one naming it", err)
	}
	cfg.Client.PingInterval = Duration(time.Second)
	if err := cfg.Check(); err != nil {
		t.Fatalf("ping_interval 1s: %v", err)
	}
}

// TestConfigMaxCommandSizeBound: Check and NewNode agree on the largest
// client.max_command_size. The engine's pending-bytes bound is twice it
// plus 64 KiB and at most 1 GiB; above that, checkconfig said ok and the
// gateway refused to start with "loop: MaxPendingBytes must be at most
// 1 GiB", which names no key.
func TestConfigMaxCommandSizeBound(t *testing.T) {
	const limit = (1<<30 - 1<<16) / 2
	for _, size := range []int{limit, limit + 1, 1 << 30} {
		cfg := Config{}
		cfg.Client.Token.HMACSecretKey = "s"
		cfg.HTTPAPI.Key = "k"
		cfg.Client.MaxCommandSize = size
		checkErr := cfg.Check()
		_, newErr := NewNode(cfg, NodeOptions{})
		if (checkErr == nil) != (newErr == nil) {
			t.Errorf("max_command_size %d: Check %v, NewNode %v", size, checkErr, newErr)
		}
		if checkErr != nil && !strings.Contains(checkErr.Error(), "client.max_command_size") {
			t.Errorf("max_command_size %d: %v does not name the key", size, checkErr)
		}
	}
}

// TestConfigBadPublicKey: a public key that is not PEM is refused by
// Check, naming its key with its section, as NewNode refuses it; it
// passed checkconfig, and the gateway then refused to start with
// "wsgate: rsa_public_key: invalid key", section unnamed.
func TestConfigBadPublicKey(t *testing.T) {
	for _, c := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.Client.Token.RSAPublicKey = "garbage" }, "client.token.rsa_public_key"},
		{func(c *Config) { c.Client.Token.ECDSAPublicKey = "garbage" }, "client.token.ecdsa_public_key"},
		{func(c *Config) {
			c.Client.SubscriptionToken = SubTokenConfig{Enabled: true, RSAPublicKey: "garbage"}
		}, "client.subscription_token.rsa_public_key"},
	} {
		cfg := Config{}
		cfg.Client.Token.HMACSecretKey = "s"
		cfg.HTTPAPI.Key = "k"
		c.set(&cfg)
		_, newErr := NewNode(cfg, NodeOptions{})
		for _, err := range []error{cfg.Check(), newErr} {
			if err == nil || !strings.Contains(err.Error(), c.want+": ") {
				t.Errorf("%s not PEM: error %v, want one naming it", c.want, err)
			}
		}
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestLogsKeepOperatorSecrets: with the operator's HMAC secret (flag or
// configuration file) the logs carry no connection token made with it (a
// 24-hour credential for whoever reads the logs), and with -log-format
// json every line is JSON. Only a secret wsgate generated itself (the
// embedded configuration, to try it) comes with a test token, logged as
// any other line.
func TestLogsKeepOperatorSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	check := func(logs *logSink, wantToken bool) {
		t.Helper()
		logs.mu.Lock()
		defer logs.mu.Unlock()
		token := false
		for _, l := range logs.lines {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Errorf("not JSON: %q", l)
			}
			if strings.Contains(l, "eyJ") { // a JWT's header
				token = true
			}
		}
		if token != wantToken {
			t.Errorf("a token in the logs: %v, want %v: %q", token, wantToken, logs.lines)
		}
	}
	logs := run(t, bin, "admin listening", "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", freeAddr(t),
		"-token-hmac-secret", "operator-secret", "-api-key", "k", "-log-format", "json")
	check(logs, false)
	cfg := t.TempDir() + "/c.json"
	writeFile(t, cfg, `{"client":{"token":{"hmac_secret_key":"operator-secret"}},"http_api":{"key":"k"}}`)
	logs = run(t, bin, "admin listening", "-config", cfg, "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", freeAddr(t),
		"-log-format", "json")
	check(logs, false)
	logs = run(t, bin, "admin listening", "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", freeAddr(t),
		"-log-format", "json")
	check(logs, true)
}

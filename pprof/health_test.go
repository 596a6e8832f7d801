package pprof

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestHealth serves HandleHealth over a real socket: /healthz is 200
// whatever the checks say, /readyz is 503 naming the first failing check
// (nil checks are skipped) and 200 once every check passes.
func TestHealth(t *testing.T) {
	var brokerErr, drainErr error
	mux := http.NewServeMux()
	HandleHealth(mux, nil, func() error { return brokerErr }, func() error { return drainErr })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name          string
		broker, drain error
		status        int
		body          string
	}{
		{"ready", nil, nil, 200, "ok\n"},
		{"broker down", errors.New("broker down"), nil, 503, "not ready: broker down\n"},
		{"both", errors.New("broker down"), errors.New("draining"), 503, "not ready: broker down\n"},
		{"draining", nil, errors.New("draining"), 503, "not ready: draining\n"},
	} {
		brokerErr, drainErr = tc.broker, tc.drain
		if st, body := get("/readyz"); st != tc.status || body != tc.body {
			t.Errorf("%s: /readyz = %d %q, want %d %q", tc.name, st, body, tc.status, tc.body)
		}
		if st, body := get("/healthz"); st != 200 || body != "ok\n" {
			t.Errorf("%s: /healthz = %d %q", tc.name, st, body)
		}
	}
}

package pprof

import (
	"io"
	"net/http"
)

// HandleHealth serves GET /healthz and GET /readyz on mux. /healthz
// answers 200 while the process serves HTTP. /readyz answers 200 when
// every check returns nil, and otherwise 503 with the first failure (for
// instance the broker is unreachable, or the node is draining).
func HandleHealth(mux *http.ServeMux, ready ...func() error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", ReadyHandler(ready...))
}

// ReadyHandler answers 200 "ok" when every check returns nil, and
// otherwise 503 "not ready: <error>" naming the first failing check.
func ReadyHandler(checks ...func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, check := range checks {
			if check == nil {
				continue
			}
			if err := check(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

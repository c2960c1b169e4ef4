// Package web holds the browser side of statesync, embedded in the binary:
// statesync.js, an ES module client compatible with the TypeScript
// @statesync/core interfaces, and the live dashboard page.
//
// [Handler] serves them at "/" (the dashboard) and "/statesync.js"; the
// daemon mounts it next to the httpsync API.
package web

import (
	"embed"
	"net/http"
)

//go:embed index.html statesync.js
var files embed.FS

// Handler returns an http.Handler serving the dashboard at "/" (and
// "/index.html") and the client module at "/statesync.js". Other paths are
// 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var name, ctype string
		switch r.URL.Path {
		case "/", "/index.html":
			name, ctype = "index.html", "text/html; charset=utf-8"
		case "/statesync.js":
			name, ctype = "statesync.js", "text/javascript; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		b, err := files.ReadFile(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

// Module returns the source of statesync.js.
func Module() []byte {
	b, _ := files.ReadFile("statesync.js")
	return b
}

package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/web"
)

// Serving the dashboard and the browser client next to the HTTP API, as
// the daemon does: pages load the module from the same origin with
// import { connect } from "/statesync.js".
func ExampleHandler() {
	src, err := statesync.NewSource(statesync.NewMemoryStore(nil), nil)
	if err != nil {
		panic(err)
	}
	defer src.Close()
	api := httpsync.NewHandler(src, nil)
	defer api.Close()

	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", web.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/", "/statesync.js", "/nope"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		fmt.Println(path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	// Output:
	// / 200 text/html; charset=utf-8
	// /statesync.js 200 text/javascript; charset=utf-8
	// /nope 404 text/plain; charset=utf-8
}

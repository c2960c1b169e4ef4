package web_test

// Real-browser tests of statesync.js and the dashboard: a headless Chromium,
// driven with chromedp, against a statesync server on a loopback listener.
// They skip when Chromium is missing, unless STATESYNC_REQUIRE_SERVICES is
// set (CI sets it; .ci/services installs Chromium).
//
// Set STATESYNC_SCREENSHOTS to a directory to keep the dashboard screenshot
// of TestDashboard/TwoTabs there (they are always written to the test's
// temporary directory).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/poll"
	"github.com/statesync-go/statesync/internal/svc"
	"github.com/statesync-go/statesync/web"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// waitTimeout bounds each action in the browser (polls are bounded by
	// poll.Timeout).
	waitTimeout = 10 * time.Second
)

// --- the server -------------------------------------------------------------

// server is the daemon's HTTP surface in miniature on a real loopback
// listener: the httpsync API at /v1/ over a statesync.Source, the dashboard
// and statesync.js (web.Handler) at /, and the pages of testdata at /test/.
// The API's source can be replaced while clients are connected (serve).
type server struct {
	ts *httptest.Server

	mu         sync.Mutex    // protects the fields below
	delay      time.Duration // of each snapshot GET of delayTopic, before it is served
	delayTopic string        // "" means every topic
	src        *statesync.Source
	h          *httpsync.Handler
	sources    []*statesync.Source // every source served, closed at cleanup
	handlers   []*httpsync.Handler // every handler made, closed at cleanup
	reqs       []apiRequest
	reads      http.Handler // if set, serves the snapshot GETs (another daemon)
}

// apiRequest is what the server saw of one request to /v1/.
type apiRequest struct {
	Method, Path string
	Query        string // the raw query
	Auth         string // the Authorization header
	AccessToken  string // the access_token query parameter
}

// newServer starts a server over a new memory source, its handler made with
// opts.
func newServer(t testing.TB, opts *httpsync.HandlerOptions) *server {
	t.Helper()
	s := &server{}
	s.serve(newSource(t, nil), opts)
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/", s.serveAPI)
	mux.Handle("/test/", http.StripPrefix("/test/", http.FileServerFS(os.DirFS("testdata"))))
	mux.Handle("/", web.Handler())
	s.ts = httptest.NewServer(mux)
	t.Cleanup(s.close)
	return s
}

// newSource returns a Source over a new MemoryStore made with opts.
func newSource(t testing.TB, opts *statesync.MemoryStoreOptions) *statesync.Source {
	t.Helper()
	src, err := statesync.NewSource(statesync.NewMemoryStore(opts), nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// serve makes the API serve src through a new Handler from now on and closes
// the previous handler, which ends its event streams: their clients
// reconnect, to the new handler.
func (s *server) serve(src *statesync.Source, opts *httpsync.HandlerOptions) {
	h := httpsync.NewHandler(src, opts)
	s.mu.Lock()
	old := s.h
	if s.src != src {
		s.sources = append(s.sources, src)
	}
	s.src, s.h = src, h
	s.handlers = append(s.handlers, h)
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (s *server) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, apiRequest{
		Method:      r.Method,
		Path:        r.URL.Path,
		Query:       r.URL.RawQuery,
		Auth:        r.Header.Get("Authorization"),
		AccessToken: r.URL.Query().Get("access_token"),
	})
	var h http.Handler = s.h
	if s.reads != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/v1/topics/") {
		h = s.reads
	}
	d, topic := s.delay, s.delayTopic
	s.mu.Unlock()
	if d > 0 && r.Method == http.MethodGet && (r.URL.Path == "/v1/topics/"+topic || topic == "" && strings.HasPrefix(r.URL.Path, "/v1/topics/")) {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-r.Context().Done():
			tm.Stop()
		}
	}
	h.ServeHTTP(w, r)
}

// close ends the streams, then the server, then the sources and stores.
func (s *server) close() {
	s.mu.Lock()
	handlers, sources := s.handlers, s.sources
	s.mu.Unlock()
	for _, h := range handlers {
		h.Close()
	}
	s.ts.Close()
	for _, src := range sources {
		src.Close()
		if c, ok := src.Store().(interface{ Close() error }); ok {
			c.Close()
		}
	}
}

// delayGets makes every later snapshot GET of topic ("" for every topic) wait
// d before it is served.
// readFrom makes h serve the snapshot GETs from now on, as another daemon
// behind a load balancer; nil gives them back to the current handler.
func (s *server) readFrom(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = h
}

func (s *server) delayGets(topic string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay, s.delayTopic = d, topic
}

func (s *server) source() *statesync.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

func (s *server) handler() *httpsync.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

func (s *server) requests() []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apiRequest(nil), s.reqs...)
}

func (s *server) put(t testing.TB, topic, data string) statesync.Snapshot {
	t.Helper()
	snap, err := s.source().Put(context.Background(), topic, json.RawMessage(data))
	if err != nil {
		t.Fatalf("Put(%q, %s) = %v", topic, data, err)
	}
	return snap
}

func (s *server) get(t testing.TB, topic string) statesync.Snapshot {
	t.Helper()
	snap, err := s.source().Snapshot(context.Background(), topic)
	if err != nil {
		t.Fatalf("Get(%q) = %v", topic, err)
	}
	return snap
}

// gets counts the snapshot GETs the current handler answered (200 and 304).
func (s *server) gets() uint64 {
	st := s.handler().Stats()
	return st.SnapshotGets + st.NotModified
}

func (s *server) waitStreams(t testing.TB, want int64) {
	t.Helper()
	poll.UntilState(t, fmt.Sprintf("StreamsOpen == %d", want), func() (bool, string) {
		st := s.handler().Stats()
		return st.StreamsOpen == want, fmt.Sprintf("StreamsOpen = %d", st.StreamsOpen)
	})
}

// --- the browser ------------------------------------------------------------

// newBrowser starts a headless Chromium with a fresh profile and returns its
// chromedp context; tabs are made with newTab. Cleanup closes the browser and
// waits until chromedp has reaped it, so that no goroutine is left. extra
// options are added to the default flags.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		svc.Missing(t, "Chromium is missing: %v (.ci/services installs it; apt-get install chromium to run the browser tests)", err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}, extra...)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		allocCancel()
		t.Fatalf("starting Chromium: %v", err)
	}
	t.Cleanup(func() {
		// Close the browser gracefully, then cancel: the allocator's
		// cancel waits for its goroutines, which end once the process
		// has been reaped.
		cctx, ccancel := context.WithTimeout(ctx, waitTimeout)
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing Chromium: %v", err)
		}
		ccancel()
		cancel()
		allocCancel()
	})
	return ctx
}

// tab is one browser tab, with the console messages of its page.
type tab struct {
	ctx context.Context
	url string

	mu      sync.Mutex // protects console
	console []string
}

// newTab opens a tab in browser and navigates it to url. Cleanup closes it;
// if the test failed, it logs the page's console first.
func newTab(t *testing.T, browser context.Context, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	tb := &tab{ctx: ctx, url: url}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return // the tab's context ended
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.String())
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			tb.mu.Lock()
			for _, m := range tb.console {
				t.Logf("console of %s: %s", url, m)
			}
			tb.mu.Unlock()
		}
		cancel()
		<-done
	})
	tb.run(t, chromedp.Navigate(url))
	return tb
}

// run runs actions in the tab, bounded by waitTimeout.
func (tb *tab) run(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("in %s: %v", tb.url, err)
	}
}

// eval runs body as the body of an async JavaScript function in the tab and
// decodes its (JSON) result into out, unless out is nil.
func (tb *tab) eval(t testing.TB, body string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte]("(async () => {\n"+body+"\n})()", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating {%s} in %s: %v", body, tb.url, err)
	}
	if out == nil {
		return
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("evaluating {%s}: result %s: %v", body, raw, err)
	}
}

// waitFor evaluates the JavaScript expression expr in tb until ok accepts its
// value, and returns that value; it fails with desc and the last value if
// that takes longer than poll.Timeout.
func waitFor[T any](t testing.TB, tb *tab, desc, expr string, ok func(T) bool) T {
	t.Helper()
	var v T
	poll.UntilState(t, desc, func() (bool, string) {
		var zero T
		v = zero
		tb.eval(t, "return "+expr, &v)
		return ok(v), fmt.Sprintf("%+v", v)
	})
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// compact returns the compact form of the JSON text s, or s if it is not
// JSON.
func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}

// --- the dashboard ----------------------------------------------------------

// dash is what a dashboard tab shows.
type dash struct {
	Topic, Rev, Epoch, Status string
	Editor                    string
	Dirty                     bool
	EditInfo                  string
	Banner, BannerClass       string
}

func (d dash) String() string {
	return fmt.Sprintf("{topic %s rev %s status %s dirty %v editor %s banner %q (%s) editinfo %q}",
		d.Topic, d.Rev, d.Status, d.Dirty, compact(d.Editor), d.Banner, d.BannerClass, d.EditInfo)
}

const dashState = `(() => {
  const $ = (id) => document.getElementById(id);
  if (!$("editor")) return {};
  return {
    Topic: $("t-name").textContent, Rev: $("t-rev").textContent, Epoch: $("t-epoch").textContent,
    Status: $("status").textContent, Editor: $("editor").value,
    Dirty: $("editor").classList.contains("dirty"), EditInfo: $("editinfo").textContent,
    Banner: $("banner").textContent, BannerClass: $("banner").className,
  };
})()`

func waitDash(t testing.TB, tb *tab, desc string, ok func(dash) bool) dash {
	t.Helper()
	return waitFor(t, tb, desc, dashState, ok)
}

// edit replaces the editor's text by typing text (key events, so the page
// sees its input events).
func (tb *tab) edit(t testing.TB, text string) {
	t.Helper()
	tb.eval(t, `document.getElementById("editor").value = "";`, nil)
	tb.run(t, chromedp.SendKeys(chromedp.ID("editor"), text))
}

func (tb *tab) click(t testing.TB, id string) {
	t.Helper()
	tb.run(t, chromedp.Click(chromedp.ID(id)))
}

func (tb *tab) screenshot(t testing.TB) image.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot of %s: %v", tb.url, err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", tb.url, err)
	}
	return img
}

// saveSideBySide writes the images side by side as one PNG into the test's
// temporary directory (and STATESYNC_SCREENSHOTS, if set).
func saveSideBySide(t testing.TB, name string, imgs ...image.Image) {
	t.Helper()
	const gap = 8
	w, h := 0, 0
	for _, img := range imgs {
		w += img.Bounds().Dx() + gap
		h = max(h, img.Bounds().Dy())
	}
	out := image.NewRGBA(image.Rect(0, 0, w-gap, h))
	draw.Draw(out, out.Bounds(), image.Black, image.Point{}, draw.Src)
	x := 0
	for _, img := range imgs {
		r := img.Bounds()
		draw.Draw(out, image.Rect(x, 0, x+r.Dx(), r.Dy()), img, r.Min, draw.Src)
		x += r.Dx() + gap
	}
	var b bytes.Buffer
	if err := png.Encode(&b, out); err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("STATESYNC_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%dx%d)", p, out.Bounds().Dx(), out.Bounds().Dy())
	}
}

// TestDashboard drives the dashboard (index.html) in tabs of one browser.
func TestDashboard(t *testing.T) {
	browser := newBrowser(t)
	t.Run("TwoTabs", func(t *testing.T) { testDashboardTwoTabs(t, browser) })
	t.Run("SwitchTopics", func(t *testing.T) { testDashboardSwitchTopics(t, browser) })
}

// testDashboardTwoTabs opens the dashboard on one topic in two tabs: an edit
// saved in tab A shows in tab B; two edits from the same revision conflict,
// the second save is refused with the conflict banner and the server keeps
// the first; a write made from Go shows in both tabs.
//
// B-LIFE-04 (a tab opened after a write shows it), B-E2E-01 (one write, both
// windows converge), B-E2E-02 (a Go-side write reaches every tab), DESIGN §4
// (PUT with If-Match: a stale revision is refused with 412 and nothing is
// stored).
func testDashboardTwoTabs(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	r1 := s.put(t, "demo", `{"color":"red","n":1}`)
	epoch := r1.Epoch

	url := s.ts.URL + "/?topic=demo"
	tabs := map[string]*tab{"A": newTab(t, browser, url), "B": newTab(t, browser, url)}
	a, b := tabs["A"], tabs["B"]
	for name, tb := range tabs {
		waitDash(t, tb, "tab "+name+" shows demo at "+r1.Revision.String(), func(d dash) bool {
			return d.Topic == "demo" && d.Rev == r1.Revision.String() && d.Epoch == epoch &&
				compact(d.Editor) == `{"color":"red","n":1}` && d.Status == "open" && !d.Dirty
		})
	}

	// An edit saved in A reaches B.
	a.edit(t, `{"color":"blue","n":2}`)
	waitDash(t, a, "tab A is dirty after typing", func(d dash) bool { return d.Dirty })
	a.click(t, "save")
	r2 := r1.Revision + 1
	waitDash(t, a, "tab A saved", func(d dash) bool {
		return d.Banner == fmt.Sprintf("Saved as revision %d.", r2) && d.Rev == r2.String() && !d.Dirty
	})
	if got := s.get(t, "demo"); got.Revision != r2 || string(got.Data) != `{"color":"blue","n":2}` {
		t.Fatalf("Get(%q) = %v %s; want %v %s", "demo", got.Revision, got.Data, r2, `{"color":"blue","n":2}`)
	}
	waitDash(t, b, "tab B follows A's save", func(d dash) bool {
		return d.Rev == r2.String() && compact(d.Editor) == `{"color":"blue","n":2}` && !d.Dirty
	})

	// Both edit from r2; A saves first, so B's save is refused.
	a.edit(t, `{"color":"green","n":3}`)
	b.edit(t, `{"color":"yellow","n":3}`)
	for name, tb := range tabs {
		waitDash(t, tb, "tab "+name+" edits from "+r2.String(), func(d dash) bool {
			return d.Dirty && d.EditInfo == "editing from revision "+r2.String()
		})
	}
	a.click(t, "save")
	r3 := r2 + 1
	waitDash(t, a, "tab A saved again", func(d dash) bool {
		return d.Banner == fmt.Sprintf("Saved as revision %d.", r3) && !d.Dirty
	})
	waitDash(t, b, "tab B, still editing, is told of A's save", func(d dash) bool {
		return d.Rev == r3.String() && d.Dirty && compact(d.Editor) == `{"color":"yellow","n":3}` &&
			strings.Contains(d.BannerClass, "info")
	})
	b.click(t, "save")
	d := waitDash(t, b, "tab B shows the conflict", func(d dash) bool {
		return strings.Contains(d.BannerClass, "conflict")
	})
	if !strings.HasPrefix(d.Banner, "Conflict: the topic changed since revision "+r2.String()) ||
		!strings.Contains(d.Banner, "(now "+r3.String()+")") || !d.Dirty {
		t.Errorf("tab B after a stale save = %v; want the conflict banner naming %v and %v, the edit kept", d, r2, r3)
	}
	if got := s.get(t, "demo"); got.Revision != r3 || string(got.Data) != `{"color":"green","n":3}` {
		t.Fatalf("Get(%q) after B's stale save = %v %s; want %v %s", "demo", got.Revision, got.Data, r3, `{"color":"green","n":3}`)
	}
	saveSideBySide(t, "dashboard-two-tabs.png", a.screenshot(t), b.screenshot(t))

	// B discards its edit; a write from Go reaches both tabs.
	b.click(t, "reload")
	waitDash(t, b, "tab B reloaded", func(d dash) bool {
		return !d.Dirty && compact(d.Editor) == `{"color":"green","n":3}` && d.Banner == ""
	})
	r4 := s.put(t, "demo", `{"color":"purple","n":4}`)
	for name, tb := range tabs {
		waitDash(t, tb, "tab "+name+" shows the Go-side write", func(d dash) bool {
			return d.Rev == r4.Revision.String() && compact(d.Editor) == `{"color":"purple","n":4}` && !d.Dirty
		})
	}
}

// testDashboardSwitchTopics: the user opens topic slow, whose snapshots are
// slow to come, then topic fast before slow's has come: the dashboard shows
// fast, and slow's snapshot, when it comes, does not replace it in the
// editor (it only updates slow's revision in the topic list).
func testDashboardSwitchTopics(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	slow := s.put(t, "slow", `{"topic":"slow"}`)
	fast := s.put(t, "fast", `{"topic":"fast"}`)
	const delay = time.Second
	s.delayGets("slow", delay)
	p := newTab(t, browser, s.ts.URL+"/")

	for _, name := range []string{"slow", "fast"} {
		p.run(t, chromedp.SendKeys(chromedp.ID("newname"), name), chromedp.Click(chromedp.CSS("#newtopic button")))
	}
	isFast := func(d dash) bool {
		return d.Topic == "fast" && d.Rev == fast.Revision.String() && compact(d.Editor) == `{"topic":"fast"}`
	}
	waitDash(t, p, "the dashboard shows fast", isFast)
	waitFor(t, p, "slow's snapshot arrives", `document.querySelector('#topics li[data-topic="slow"] .rev')?.textContent ?? ""`,
		func(r string) bool { return r == slow.Revision.String() })
	// Give a stale fetch of slow (it would take delay) time to land.
	time.Sleep(delay + 300*time.Millisecond)
	var d dash
	p.eval(t, "return "+dashState, &d)
	if !isFast(d) {
		t.Errorf("dashboard after slow's snapshot came = %v; want topic fast at %v with its data", d, fast.Revision)
	}
}

// --- the module -------------------------------------------------------------

// newPage opens a tab on testdata/module.html, which loads /statesync.js and
// the harness (testdata/harness.js) as window.ss and window.T.
func newPage(t *testing.T, browser context.Context, s *server) *tab {
	t.Helper()
	tb := newTab(t, browser, s.ts.URL+"/test/module.html")
	waitFor(t, tb, "the test page loads", `typeof window.T === "object"`, func(ok bool) bool { return ok })
	return tb
}

// jsEvent is an event as a subscriber's handler receives it.
type jsEvent struct {
	Topic    string `json:"topic"`
	Revision any    `json:"revision"` // any: the test checks it is a string
	Epoch    string `json:"epoch"`
}

// jsSnap is a snapshot as the page sees it.
type jsSnap struct {
	Revision any             `json:"revision"`
	Epoch    string          `json:"epoch"`
	Data     json.RawMessage `json:"data"`
}

func (s jsSnap) String() string { return fmt.Sprintf("{%v %s %s}", s.Revision, s.Epoch, s.Data) }

// jsError is a rejection as harness.attempt reports it.
type jsError struct {
	IsStateSyncError bool   `json:"isStateSyncError"`
	Name             string `json:"name"`
	Message          string `json:"message"`
	Status           int    `json:"status"`
	Code             string `json:"code"`
	Conflict         bool   `json:"conflict"`
	CurrentRevision  string `json:"currentRevision"`
}

type jsAttempt struct {
	Value json.RawMessage `json:"value"`
	Error *jsError        `json:"error"`
}

// checkIncreasing fails unless the revisions of applied strictly increase
// within each epoch (B-GATE-06).
func checkIncreasing(t testing.TB, applied []jsSnap) {
	t.Helper()
	var prev uint64
	prevEpoch := ""
	for i, a := range applied {
		rs, _ := a.Revision.(string)
		r, err := strconv.ParseUint(rs, 10, 64)
		if err != nil {
			t.Fatalf("applied[%d].revision = %#v; want a canonical revision string", i, a.Revision)
		}
		if i > 0 && a.Epoch == prevEpoch && r <= prev {
			t.Fatalf("applied revisions %v do not strictly increase at %d", applied, i)
		}
		prev, prevEpoch = r, a.Epoch
	}
}

// TestModule drives statesync.js in pages of one browser, each subtest
// against a server of its own.
func TestModule(t *testing.T) {
	browser := newBrowser(t)
	t.Run("Subscriber", func(t *testing.T) { testSubscriber(t, browser) })
	t.Run("Provider", func(t *testing.T) { testProvider(t, browser) })
	t.Run("OneEventSource", func(t *testing.T) { testOneEventSource(t, browser) })
	t.Run("FollowGate", func(t *testing.T) { testFollowGate(t, browser) })
	t.Run("FollowCoalesces", func(t *testing.T) { testFollowCoalesces(t, browser) })
	t.Run("FollowEpoch", func(t *testing.T) { testFollowEpoch(t, browser) })
	t.Run("Reconnect", func(t *testing.T) { testReconnect(t, browser) })
	t.Run("Farewell", func(t *testing.T) { testFarewell(t, browser) })
	t.Run("Writes", func(t *testing.T) { testWrites(t, browser) })
	t.Run("Token", func(t *testing.T) { testToken(t, browser) })
}

// testSubscriber: client.subscriber(topic).subscribe(handler) is the
// @statesync/core InvalidationSubscriber: it returns a Promise of the
// unsubscribe function; the handler receives {topic, revision (a string),
// epoch} for Go-side writes; after unsubscribe it receives nothing, while
// another handler on the same stream still does; the last unsubscribe closes
// the stream. B-TRANS-01, B-TRANS-02, B-PROTO-01.
func testSubscriber(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	r1 := s.put(t, "sub", `{"v":1}`)
	p := newPage(t, browser, s)

	type subscribed struct {
		IsPromise       bool   `json:"isPromise"`
		UnsubscribeType string `json:"unsubscribeType"`
	}
	var res struct{ One, Two subscribed }
	p.eval(t, `T.client("c");
		return {One: await T.subscribe("one", "c", "sub"), Two: await T.subscribe("two", "c", "sub")};`, &res)
	for name, r := range map[string]subscribed{"one": res.One, "two": res.Two} {
		if !r.IsPromise || r.UnsubscribeType != "function" {
			t.Errorf("subscribe (%s) returned promise=%v resolving to a %s; want a Promise of a function", name, r.IsPromise, r.UnsubscribeType)
		}
	}
	s.waitStreams(t, 1)

	r2 := s.put(t, "sub", `{"v":2}`)
	want := jsEvent{Topic: "sub", Revision: r2.Revision.String(), Epoch: r2.Epoch}
	for _, name := range []string{"one", "two"} {
		evs := waitFor(t, p, "handler "+name+" gets "+r2.Revision.String(), "T.events["+js(name)+"]", func(evs []jsEvent) bool {
			return len(evs) > 0 && evs[len(evs)-1].Revision == r2.Revision.String()
		})
		if got := evs[len(evs)-1]; got != want {
			t.Errorf("handler %s got %+v; want %+v", name, got, want)
		}
		// The stream's first frame carries the revision the topic had.
		if got := evs[0].Revision; got != r1.Revision.String() && got != r2.Revision.String() {
			t.Errorf("handler %s's first event has revision %v; want %v (the stream's initial frame)", name, got, r1.Revision)
		}
	}
	// Keys are those of an InvalidationEvent, plus the epoch: topic,
	// revision, epoch, and the optional sourceId and timestampMs (a number).
	var types map[string]string
	p.eval(t, `const ev = T.events.one.at(-1);
		return Object.fromEntries(Object.keys(ev).map((k) => [k, typeof ev[k]]));`, &types)
	for k, typ := range types {
		want := map[string]string{"topic": "string", "revision": "string", "epoch": "string", "sourceId": "string", "timestampMs": "number"}[k]
		if typ != want {
			t.Errorf("event field %s is a %s; want %s", k, typ, cmp.Or(want, "no such field"))
		}
	}

	// Unsubscribe one: two still receives over the same stream, one does not.
	var before int
	p.eval(t, `T.unsubs.one(); return T.events.one.length;`, &before)
	r3 := s.put(t, "sub", `{"v":3}`)
	waitFor(t, p, "handler two gets "+r3.Revision.String(), "T.events.two.at(-1).revision", func(r string) bool { return r == r3.Revision.String() })
	var after int
	p.eval(t, `return T.events.one.length;`, &after)
	if after != before {
		t.Errorf("unsubscribed handler got %d more events; want none", after-before)
	}
	if st := s.handler().Stats(); st.StreamsTotal != 1 {
		t.Errorf("StreamsTotal = %d; want 1 (unsubscribing one handler of a topic keeps the stream)", st.StreamsTotal)
	}
	p.eval(t, `T.unsubs.two();`, nil)
	s.waitStreams(t, 0)
	var esOpen int
	p.eval(t, `return T.es.open;`, &esOpen)
	if esOpen != 0 {
		t.Errorf("EventSources open after the last unsubscribe = %d; want 0", esOpen)
	}
}

// testProvider: client.provider(topic).getSnapshot() is the @statesync/core
// SnapshotProvider: it resolves to {revision, data} (and the epoch), the
// revision a string; a topic never written is {revision: "0", data: null}.
// B-TRANS-03.
func testProvider(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	w := s.put(t, "prov", `{"theme":"dark","size":[1,2]}`)
	p := newPage(t, browser, s)

	var got, never jsSnap
	p.eval(t, `return await T.client("c").provider("prov").getSnapshot();`, &got)
	if want := (jsSnap{Revision: w.Revision.String(), Epoch: w.Epoch, Data: w.Data}); got.String() != want.String() {
		t.Errorf("getSnapshot() = %v; want %v", got, want)
	}
	p.eval(t, `return await T.clients.c.provider("never").getSnapshot();`, &never)
	if never.Revision != "0" || string(never.Data) != "null" {
		t.Errorf("getSnapshot() of a topic never written = %v; want revision \"0\", data null", never)
	}
	// A second call is conditional (If-None-Match) and returns the same.
	var again jsSnap
	p.eval(t, `return await T.clients.c.provider("prov").getSnapshot();`, &again)
	if again.String() != got.String() {
		t.Errorf("getSnapshot() again = %v; want %v", again, got)
	}
	if st := s.handler().Stats(); st.NotModified != 1 {
		t.Errorf("NotModified = %d; want 1 (the second GET is conditional)", st.NotModified)
	}
}

// testOneEventSource: one client following several topics (subscribers and
// a follower) holds one EventSource, which the server counts as one stream,
// and which carries the invalidations of every topic. DESIGN §6.
func testOneEventSource(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	p := newPage(t, browser, s)
	topics := []string{"t1", "t2", "t3"}
	p.eval(t, `T.client("c");
		await Promise.all(["t1", "t2", "t3"].map((topic) => T.subscribe(topic, "c", topic)));
		await T.follow("f", "c", "t4");`, nil)
	s.waitStreams(t, 1)

	revs := map[string]string{}
	for _, topic := range append(topics, "t4") {
		revs[topic] = s.put(t, topic, `{"topic":`+js(topic)+`}`).Revision.String()
	}
	for _, topic := range topics {
		waitFor(t, p, "subscriber of "+topic+" gets "+revs[topic], "T.events["+js(topic)+"].at(-1)?.revision ?? null",
			func(r *string) bool { return r != nil && *r == revs[topic] })
	}
	waitFor(t, p, "follower of t4 applies "+revs["t4"], `T.followers.f.revision()`, func(r string) bool { return r == revs["t4"] })

	var es struct {
		Created, Open int
		URLs          []string
	}
	p.eval(t, `return {Created: T.es.created, Open: T.es.open, URLs: T.es.urls};`, &es)
	if es.Open != 1 {
		t.Errorf("EventSources open = %d (urls %q); want 1", es.Open, es.URLs)
	}
	if st := s.handler().Stats(); st.StreamsOpen != 1 {
		t.Errorf("StreamsOpen = %d; want 1", st.StreamsOpen)
	}
	last := es.URLs[len(es.URLs)-1]
	for _, topic := range append(topics, "t4") {
		if !strings.Contains(last, "topic="+topic) {
			t.Errorf("the EventSource's URL %s does not name topic %s", last, topic)
		}
	}
	// The three subscriptions made in one turn opened one stream; the
	// follower's, made later, reopened it once.
	if es.Created != 2 {
		t.Errorf("EventSources created = %d (%q); want 2", es.Created, es.URLs)
	}
}

// testFollowGate: follow applies the first snapshot whatever its revision;
// an invalidation at or below the applied revision costs no fetch (a stream
// reopened for another topic replays the current revision); offer applies
// only a newer snapshot; applied revisions strictly increase. B-LIFE-04,
// B-LIFE-05, B-GATE-01, B-GATE-03, B-GATE-06, B-GATE-12.
func testFollowGate(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	p := newPage(t, browser, s)

	var start string
	p.eval(t, `T.client("c"); return await T.follow("never", "c", "never");`, &start)
	if start != "0" {
		t.Errorf("follow of a topic never written: revision() = %q; want \"0\" (the first snapshot is applied)", start)
	}

	s.put(t, "g", `{"v":1}`)
	p.eval(t, `await T.follow("g", "c", "g"); await T.subscribe("g-events", "c", "g");`, nil)
	s.waitStreams(t, 1)
	// A write after the stream opened: once it is applied, the stream's
	// first frame (sent before it) has been handled too.
	w := s.put(t, "g", `{"v":2}`)
	waitFor(t, p, "g-events gets "+w.Revision.String(), `T.events["g-events"].at(-1)?.revision ?? ""`, func(r string) bool { return r == w.Revision.String() })
	waitFor(t, p, "the follower applies "+w.Revision.String(), `T.followers.g.revision()`, func(r string) bool { return r == w.Revision.String() })
	var calls0, n0 int
	p.eval(t, `return T.clients.c.snapshotCalls.g;`, &calls0)
	p.eval(t, `return T.events["g-events"].length;`, &n0)

	// Reopen the stream (another topic joins): its first frame replays g at
	// w, which the gate drops without a fetch.
	p.eval(t, `await T.subscribe("other", "c", "other");`, nil)
	replay := waitFor(t, p, "the reopened stream replays g", `T.events["g-events"].slice(`+strconv.Itoa(n0)+`)`, func(evs []jsEvent) bool { return len(evs) > 0 })
	if replay[0].Revision != w.Revision.String() {
		t.Fatalf("replayed event = %+v; want revision %v", replay[0], w.Revision)
	}
	var calls int
	p.eval(t, `return T.clients.c.snapshotCalls.g;`, &calls)
	if calls != calls0 {
		t.Errorf("getSnapshot calls for g after an invalidation at the applied revision = %d; want %d (no fetch)", calls, calls0)
	}

	var offers struct{ Old, Same, Newer bool }
	lower, newer := strconv.FormatUint(uint64(w.Revision)-1, 10), strconv.FormatUint(uint64(w.Revision)+5, 10)
	p.eval(t, fmt.Sprintf(`const h = T.followers.g;
		return {Old: h.offer({revision: %s, epoch: %s, data: "old"}),
			Same: h.offer({revision: %s, epoch: %s, data: "same"}),
			Newer: h.offer({revision: %s, epoch: %s, data: "newer"})};`,
		js(lower), js(w.Epoch), js(w.Revision.String()), js(w.Epoch), js(newer), js(w.Epoch)), &offers)
	if offers.Old || offers.Same || !offers.Newer {
		t.Errorf("offer(lower, same, newer) = %v, %v, %v; want false, false, true", offers.Old, offers.Same, offers.Newer)
	}
	var applied []jsSnap
	p.eval(t, `return T.applied.g;`, &applied)
	if n := len(applied); n < 2 || applied[n-2].Revision != w.Revision.String() || applied[n-1].Revision != newer || string(applied[n-1].Data) != `"newer"` {
		t.Errorf("applied = %v; want it to end with %v, then %s \"newer\"", applied, w.Revision, newer)
	}
	checkIncreasing(t, applied)
}

// testFollowCoalesces: 100 Go-side writes, a few milliseconds apart, while
// every snapshot GET takes 150 ms: the follower makes at most one fetch in
// flight and one queued, so far fewer fetches than invalidations, applies the
// final revision, and its applied revisions strictly increase. B-COAL-01,
// B-COAL-02, B-COAL-04, B-E2E-32, B-GATE-06.
func testFollowCoalesces(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	s.put(t, "burst", `{"i":0}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c"); await T.follow("f", "c", "burst"); await T.subscribe("ev", "c", "burst");`, nil)
	s.waitStreams(t, 1)

	const delay = 150 * time.Millisecond
	s.delayGets("", delay)
	gets0 := s.gets()
	var evs0 int
	p.eval(t, `return T.events.ev.length;`, &evs0)

	begin := time.Now()
	var last statesync.Snapshot
	for i := 1; i <= 100; i++ {
		last = s.put(t, "burst", fmt.Sprintf(`{"i":%d}`, i))
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, p, "the follower applies the last write", `T.followers.f.revision()`, func(r string) bool { return r == last.Revision.String() })
	elapsed := time.Since(begin)

	gets := s.gets() - gets0
	var evs int
	p.eval(t, `return T.events.ev.length;`, &evs)
	evs -= evs0
	// Fetches are serial and each takes at least delay, so a follower that
	// coalesces makes at most one per delay of the burst, plus the one in
	// flight when it began and the queued one after it.
	bound := uint64(elapsed/delay) + 2
	t.Logf("100 writes in %v: %d invalidations delivered, %d snapshot GETs (bound %d)", elapsed.Round(time.Millisecond), evs, gets, bound)
	if gets > bound {
		t.Errorf("snapshot GETs during the burst = %d; want at most %d (elapsed %v / %v + 2)", gets, bound, elapsed, delay)
	}
	if uint64(evs) <= bound {
		t.Fatalf("only %d invalidations reached the page; too few to show coalescing (bound %d)", evs, bound)
	}
	var applied []jsSnap
	p.eval(t, `return T.applied.f;`, &applied)
	checkIncreasing(t, applied)
	if got := applied[len(applied)-1]; string(got.Data) != `{"i":100}` {
		t.Errorf("last applied = %v; want data {\"i\":100}", got)
	}
	var errs []map[string]string
	p.eval(t, `return T.errors;`, &errs)
	if len(errs) != 0 {
		t.Errorf("errors reported: %v; want none", errs)
	}
}

// testFollowEpoch: the server's source is replaced by one with another epoch
// whose revisions are lower (a restart of a memory store); the follower, its
// stream reconnected, applies the new epoch's snapshot whatever its revision,
// then follows the new source. B-REV-13, DESIGN §3 (Epoch).
func testFollowEpoch(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	old := s.put(t, "ep", `{"from":"first"}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c"); await T.follow("f", "c", "ep");`, nil)
	s.waitStreams(t, 1)

	src2 := newSource(t, &statesync.MemoryStoreOptions{Epoch: "second-epoch", FirstRevision: 1})
	s.serve(src2, nil)
	w := s.put(t, "ep", `{"from":"second"}`)
	if w.Revision >= old.Revision {
		t.Fatalf("the new source's revision %v is not lower than the old one's %v", w.Revision, old.Revision)
	}
	waitFor(t, p, "the follower applies the new epoch's snapshot", `T.followers.f.epoch()`, func(e string) bool { return e == "second-epoch" })
	w2 := s.put(t, "ep", `{"from":"second","n":2}`)
	waitFor(t, p, "the follower follows the new source", `T.followers.f.revision()`, func(r string) bool { return r == w2.Revision.String() })

	var applied []jsSnap
	p.eval(t, `return T.applied.f;`, &applied)
	want := []string{
		jsSnap{Revision: old.Revision.String(), Epoch: old.Epoch, Data: old.Data}.String(),
		jsSnap{Revision: w.Revision.String(), Epoch: w.Epoch, Data: w.Data}.String(),
		jsSnap{Revision: w2.Revision.String(), Epoch: w2.Epoch, Data: w2.Data}.String(),
	}
	var got []string
	for _, a := range applied {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("applied = %v; want %v", got, want)
	}
	checkIncreasing(t, applied)
}

// testReconnect: the server's handler closes and, while it is down, answers
// the EventSource's reconnection with 503, which makes a browser's
// EventSource give up for good; the client reopens the stream itself (with
// backoff) and its follower catches up once a handler serves again.
// B-TRANS-09 (a reconnect misses nothing: the stream's first frame carries
// the current revision).
func testReconnect(t *testing.T, browser context.Context) {
	s := newServer(t, &httpsync.HandlerOptions{RetryHint: 50 * time.Millisecond})
	s.put(t, "rc", `{"n":1}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c"); await T.follow("f", "c", "rc");`, nil)
	s.waitStreams(t, 1)

	s.handler().Close() // streams end; reconnections get 503
	waitFor(t, p, "the EventSource gives up", `T.statuses.c.at(-1) ?? ""`, func(st string) bool { return st == "closed" })
	w := s.put(t, "rc", `{"n":2}`)
	s.serve(s.source(), nil)
	waitFor(t, p, "the follower catches up after the stream is reopened", `T.followers.f.revision()`, func(r string) bool { return r == w.Revision.String() })
	var st []string
	p.eval(t, `return T.statuses.c;`, &st)
	if st[len(st)-1] != "open" {
		t.Errorf("statuses = %v; want the last to be open", st)
	}
}

// testFarewell: a server shutting down ends each stream with a retry field
// of its own (HandlerOptions.ReconnectRate: 500 ms for the first stream),
// and the browser's EventSource comes back after it, to the restarted
// server, not after the stream's retry hint (10 minutes here, longer than
// any wait of the test), and without giving up.
func testFarewell(t *testing.T, browser context.Context) {
	opts := &httpsync.HandlerOptions{RetryHint: 10 * time.Minute}
	s := newServer(t, opts)
	s.put(t, "fw", `{"n":1}`)
	p := newPage(t, browser, s)
	p.eval(t, `T.client("c"); await T.follow("f", "c", "fw");`, nil)
	s.waitStreams(t, 1)

	src := newSource(t, &statesync.MemoryStoreOptions{Epoch: "restarted", FirstRevision: 100})
	w, err := src.Put(context.Background(), "fw", json.RawMessage(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	s.serve(src, opts) // the old handler shuts down: its stream ends with the farewell
	waitFor(t, p, "the follower applies the restarted server's snapshot", `T.followers.f.revision()`,
		func(r string) bool { return r == w.Revision.String() })
	var st []string
	p.eval(t, `return T.statuses.c;`, &st)
	if slices.Contains(st, "closed") || st[len(st)-1] != "open" {
		t.Errorf("statuses = %v; want the browser to reconnect by itself (no closed), and open at the end", st)
	}
}

// testWrites: put and patch with {ifRevision} write when the topic is at
// that revision and otherwise reject with a StateSyncError whose conflict is
// true and whose currentRevision is the topic's; nothing is stored then.
// DESIGN §4 and §6 (put/patch with ifRevision).
func testWrites(t *testing.T, browser context.Context) {
	s := newServer(t, nil)
	p := newPage(t, browser, s)

	var put, patch, stalePut, stalePatch jsAttempt
	p.eval(t, `T.client("c"); return await T.attempt(() => T.clients.c.put("w", {a: 1}, {ifRevision: "0"}));`, &put)
	if put.Error != nil {
		t.Fatalf("put with ifRevision \"0\" on a new topic: %+v", put.Error)
	}
	var putRes struct{ Revision, Epoch string }
	if err := json.Unmarshal(put.Value, &putRes); err != nil {
		t.Fatal(err)
	}
	if got := s.get(t, "w"); got.Revision.String() != putRes.Revision || got.Epoch != putRes.Epoch || string(got.Data) != `{"a":1}` {
		t.Errorf("Get(%q) = %v %s %s; want %s %s {\"a\":1}", "w", got.Revision, got.Epoch, got.Data, putRes.Revision, putRes.Epoch)
	}

	p.eval(t, fmt.Sprintf(`return await T.attempt(() => T.clients.c.patch("w", {b: 2}, {ifRevision: %s}));`, js(putRes.Revision)), &patch)
	if patch.Error != nil {
		t.Fatalf("patch at the current revision: %+v", patch.Error)
	}
	var patchRes struct {
		Revision string
		Data     json.RawMessage
	}
	if err := json.Unmarshal(patch.Value, &patchRes); err != nil {
		t.Fatal(err)
	}
	cur := s.get(t, "w")
	if cur.Revision.String() != patchRes.Revision || string(cur.Data) != `{"a":1,"b":2}` || string(patchRes.Data) != `{"a":1,"b":2}` {
		t.Errorf("after patch: Get(%q) = %v %s, patch returned %s %s; want %s {\"a\":1,\"b\":2}", "w", cur.Revision, cur.Data, patchRes.Revision, patchRes.Data, patchRes.Revision)
	}

	stale := js(putRes.Revision)
	p.eval(t, `return await T.attempt(() => T.clients.c.put("w", {lost: true}, {ifRevision: `+stale+`}));`, &stalePut)
	p.eval(t, `return await T.attempt(() => T.clients.c.patch("w", {lost: true}, {ifRevision: `+stale+`}));`, &stalePatch)
	for name, a := range map[string]jsAttempt{"put": stalePut, "patch": stalePatch} {
		want := jsError{IsStateSyncError: true, Name: "StateSyncError", Status: http.StatusPreconditionFailed, Code: httpsync.CodeConflict, Conflict: true, CurrentRevision: cur.Revision.String()}
		if a.Error == nil {
			t.Errorf("%s with a stale ifRevision resolved to %s; want a rejection", name, a.Value)
			continue
		}
		got := *a.Error
		got.Message = ""
		if got != want {
			t.Errorf("%s with a stale ifRevision rejected with %+v; want %+v", name, got, want)
		}
	}
	if got := s.get(t, "w"); got.Revision != cur.Revision || string(got.Data) != string(cur.Data) {
		t.Errorf("Get(%q) after the refused writes = %v %s; want %v %s", "w", got.Revision, got.Data, cur.Revision, cur.Data)
	}
}

// testToken: against a handler with token auth, connect({token}) sends the
// token as a bearer header with fetches and as access_token on the
// EventSource (which cannot send headers), and follows a topic; without a
// token or with an unknown one, follow rejects with a 401 StateSyncError.
// DESIGN §4 (Auth), §6.
func testToken(t *testing.T, browser context.Context) {
	tokens, err := httpsync.NewTokens([]httpsync.TokenSpec{{Name: "page", Token: "tok-page", Read: []string{"*"}, Write: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, &httpsync.HandlerOptions{Auth: tokens})
	s.put(t, "sec", `{"v":1}`)
	p := newPage(t, browser, s)

	p.eval(t, `T.client("c", {token: "tok-page"}); await T.follow("f", "c", "sec"); await T.clients.c.put("sec", {v: 2});`, nil)
	w := s.put(t, "sec", `{"v":3}`)
	waitFor(t, p, "the follower with a token gets a Go-side write", `T.followers.f.revision()`, func(r string) bool { return r == w.Revision.String() })

	var sawStream, sawGet, sawPut bool
	for _, r := range s.requests() {
		switch {
		case r.Path == "/v1/events":
			sawStream = true
			if r.AccessToken != "tok-page" || r.Auth != "" {
				t.Errorf("event stream request: access_token %q, Authorization %q; want tok-page and none", r.AccessToken, r.Auth)
			}
		case r.Path == "/v1/topics/sec":
			sawGet = sawGet || r.Method == http.MethodGet
			sawPut = sawPut || r.Method == http.MethodPut
			if r.Auth != "Bearer tok-page" || r.AccessToken != "" {
				t.Errorf("%s %s: Authorization %q, access_token %q; want \"Bearer tok-page\" and none", r.Method, r.Path, r.Auth, r.AccessToken)
			}
		}
	}
	if !sawStream || !sawGet || !sawPut {
		t.Errorf("requests seen: stream %v, GET %v, PUT %v; want all", sawStream, sawGet, sawPut)
	}

	for name, opts := range map[string]string{"no token": `{}`, "unknown token": `{token: "nope"}`} {
		var a jsAttempt
		p.eval(t, `const c = T.client("x", `+opts+`); const r = await T.attempt(() => c.follow("sec", () => {})); c.close(); return r;`, &a)
		if a.Error == nil || !a.Error.IsStateSyncError || a.Error.Status != http.StatusUnauthorized {
			t.Errorf("follow with %s = %+v; want a 401 StateSyncError", name, a)
		}
	}
}

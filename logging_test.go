package statesync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/statesync-go/statesync"
)

// logBuffer is a bytes.Buffer safe for concurrent use that also remembers
// each Write call.
type logBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, string(p))
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) lines() []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// B-LOG-05, B-DEF-03: the console logger defaults to the "[state-sync]"
// prefix and drops debug records unless Debug is set.
func TestConsoleLoggerLevels(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts *statesync.ConsoleOptions
		want []string
	}{
		{"nil options", nil, []string{
			"[state-sync] INFO i", "[state-sync] WARN w", "[state-sync] ERROR e",
		}},
		{"zero options", &statesync.ConsoleOptions{}, []string{
			"[state-sync] INFO i", "[state-sync] WARN w", "[state-sync] ERROR e",
		}},
		{"debug", &statesync.ConsoleOptions{Debug: true}, []string{
			"[state-sync] DEBUG d", "[state-sync] INFO i", "[state-sync] WARN w", "[state-sync] ERROR e",
		}},
		{"prefix", &statesync.ConsoleOptions{Prefix: "[app:w1]", Debug: true}, []string{
			"[app:w1] DEBUG d", "[app:w1] INFO i", "[app:w1] WARN w", "[app:w1] ERROR e",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b logBuffer
			log := statesync.NewConsoleLogger(&b, tc.opts)
			debug := tc.opts != nil && tc.opts.Debug
			if got := log.Enabled(ctx, slog.LevelDebug); got != debug {
				t.Errorf("Enabled(Debug) = %v; want %v", got, debug)
			}
			if !log.Enabled(ctx, slog.LevelInfo) || !log.Enabled(ctx, slog.LevelError) {
				t.Errorf("Enabled(Info), Enabled(Error) = false; want true")
			}
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")
			if got := b.lines(); !slices.Equal(got, tc.want) {
				t.Errorf("lines = %q; want %q", got, tc.want)
			}
		})
	}
	if statesync.DefaultConsolePrefix != "[state-sync]" {
		t.Errorf("DefaultConsolePrefix = %q; want %q", statesync.DefaultConsolePrefix, "[state-sync]")
	}
}

type logValuer struct{ id int }

func (v logValuer) LogValue() slog.Value { return slog.GroupValue(slog.Int("id", v.id)) }

// B-LOG-05: one line per record, attributes as key=value, groups flattened,
// values quoted when they would break the line or the pairs.
func TestConsoleLoggerFormat(t *testing.T) {
	tm := time.Date(2025, 11, 24, 10, 30, 0, 5000, time.UTC)
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"message only", func(l *slog.Logger) { l.Info("started") }, "[state-sync] INFO started"},
		{"kinds", func(l *slog.Logger) {
			l.Info("m", "s", "plain", "i", -3, "u", uint64(7), "f", 1.5, "b", true,
				"d", 500*time.Millisecond, "t", tm, "e", errors.New("boom"), "raw", json.RawMessage(`{"a":1}`), "n", nil)
		}, `[state-sync] INFO m s=plain i=-3 u=7 f=1.5 b=true d=500ms t=2025-11-24T10:30:00.000005Z e=boom raw="{\"a\":1}" n=<nil>`},
		{"quoting", func(l *slog.Logger) {
			l.Warn("two words", "sp", "a b", "empty", "", "eq", "a=b", "q", `say "hi"`, "nl", "a\nb", "bad", "\xff", "uni", "é")
		}, `[state-sync] WARN two words sp="a b" empty="" eq="a=b" q="say \"hi\"" nl="a\nb" bad="\xff" uni=é`},
		{"message on one line", func(l *slog.Logger) { l.Error("line1\nline2") }, `[state-sync] ERROR "line1\nline2"`},
		{"groups", func(l *slog.Logger) {
			l.With("component", "statesync").WithGroup("req").With("id", 7).Info("m", slog.Group("user", "name", "ann"), "k", "v")
		}, "[state-sync] INFO m component=statesync req.id=7 req.user.name=ann req.k=v"},
		{"empty and inline groups", func(l *slog.Logger) {
			l.WithGroup("unused").Info("m", slog.Group("empty"), slog.Group("", "inl", 1), slog.Attr{})
		}, "[state-sync] INFO m unused.inl=1"},
		{"log valuer", func(l *slog.Logger) { l.Info("m", "v", logValuer{3}) }, "[state-sync] INFO m v.id=3"},
		{"custom level", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelWarn+2, "m") }, "[state-sync] WARN+2 m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b logBuffer
			tc.log(statesync.NewConsoleLogger(&b, nil))
			if got := b.String(); got != tc.want+"\n" {
				t.Errorf("output = %q; want %q", got, tc.want+"\n")
			}
		})
	}
}

// B-LOG-05: derived loggers share the writer and the lock, each record is
// one Write of one line, and deriving does not disturb the parent.
func TestConsoleLoggerConcurrent(t *testing.T) {
	var b logBuffer
	base := statesync.NewConsoleLogger(&b, &statesync.ConsoleOptions{Debug: true})
	parent := base.With("p", 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			l := parent.With("g", g) // siblings derived concurrently from one parent
			for i := range 50 {
				l.Debug("tick", "i", i)
			}
		})
	}
	wg.Wait()
	parent.Info("done")
	if len(b.writes) != 8*50+1 {
		t.Fatalf("%d writes; want %d", len(b.writes), 8*50+1)
	}
	for _, w := range b.writes {
		if strings.Count(w, "\n") != 1 || !strings.HasSuffix(w, "\n") || !strings.HasPrefix(w, "[state-sync] ") {
			t.Fatalf("write %q is not one prefixed line", w)
		}
		if w != "[state-sync] INFO done p=1\n" && !strings.HasPrefix(w, "[state-sync] DEBUG tick p=1 g=") {
			t.Fatalf("write %q mixes attributes of sibling loggers", w)
		}
	}
}

// logJSONKeys returns the keys of the JSON object line, with nested objects
// as "group.key", and the keys that appear more than once in one object.
// encoding/json's map decoding would hide duplicates.
func logJSONKeys(t *testing.T, line string) (keys, dups []string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func(prefix string)
	walk = func(prefix string) {
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("bad JSON log line %q: %v", line, err)
			}
			k := prefix + tok.(string)
			if seen[k] {
				dups = append(dups, k)
			}
			seen[k] = true
			keys = append(keys, k)
			tok, err = dec.Token()
			if err != nil {
				t.Fatalf("bad JSON log line %q: %v", line, err)
			}
			switch tok {
			case json.Delim('{'):
				walk(k + ".")
				dec.Token() // '}'
			case json.Delim('['):
				for dec.More() {
					var v any
					_ = dec.Decode(&v)
				}
				dec.Token() // ']'
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("log line %q is not a JSON object", line)
	}
	walk("")
	return keys, dups
}

// logLines logs with a TagLogger over a JSON handler and returns the records
// as maps.
func logRecords(t *testing.T, b *logBuffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range b.lines() {
		if _, dups := logJSONKeys(t, line); len(dups) > 0 {
			t.Errorf("log line %s has duplicate keys %v", line, dups)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(m, "time")
		recs = append(recs, m)
	}
	return recs
}

func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// B-LOG-07: tags are added to every record at every level; level and
// message are unchanged; record attributes override tags with the same key,
// in place, and a record never holds a key twice.
func TestTagLogger(t *testing.T) {
	var b logBuffer
	log := statesync.TagLogger(newJSONLogger(&b), slog.String("windowId", "main"), slog.String("sourceId", "w1"))

	log.Debug("d", "topic", "t")                                  // tags ∪ extra
	log.Warn("w")                                                 // tags alone
	log.Error("e", "sourceId", "w2")                              // extra wins
	log.Info("i", "a", 1, "a", 2)                                 // duplicates in the record: last wins
	log.With("windowId", "pop").Info("x")                         // With overrides tags too
	log.With("k", 1).Info("y", "k", 2)                            // and per-call overrides With
	log.Info("z", slog.Group("", slog.String("windowId", "inl"))) // inline groups are looked into

	want := []map[string]any{
		{"level": "DEBUG", "msg": "d", "windowId": "main", "sourceId": "w1", "topic": "t"},
		{"level": "WARN", "msg": "w", "windowId": "main", "sourceId": "w1"},
		{"level": "ERROR", "msg": "e", "windowId": "main", "sourceId": "w2"},
		{"level": "INFO", "msg": "i", "windowId": "main", "sourceId": "w1", "a": 2.0},
		{"level": "INFO", "msg": "x", "windowId": "pop", "sourceId": "w1"},
		{"level": "INFO", "msg": "y", "windowId": "main", "sourceId": "w1", "k": 2.0},
		{"level": "INFO", "msg": "z", "windowId": "inl", "sourceId": "w1"},
	}
	got := logRecords(t, &b)
	if len(got) != len(want) {
		t.Fatalf("%d records; want %d:\n%s", len(got), len(want), b.String())
	}
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("record %d = %v; want %v", i, got[i], want[i])
		}
	}
	// The overriding value takes the tag's place: tags first, in order.
	keys, _ := logJSONKeys(t, b.lines()[2])
	if want := []string{"time", "level", "msg", "windowId", "sourceId"}; !slices.Equal(keys, want) {
		t.Errorf("keys of %s = %v; want %v", b.lines()[2], keys, want)
	}
}

// B-LOG-07: tags stay at the top level when a group is opened; attributes
// inside the group are merged among themselves.
func TestTagLoggerGroups(t *testing.T) {
	var b logBuffer
	log := statesync.TagLogger(newJSONLogger(&b), slog.String("tag", "v"))
	log.WithGroup("g").With("a", 1).Info("m", "a", 2, "tag", "inner")
	log.WithGroup("").Info("n", "tag", "w") // an empty group is no group
	stacked := statesync.TagLogger(statesync.TagLogger(newJSONLogger(&b), slog.String("tag", "in")), slog.String("tag", "out"))
	stacked.Info("o")

	got := logRecords(t, &b)
	want := []string{
		"map[g:map[a:2 tag:inner] level:INFO msg:m tag:v]",
		"map[level:INFO msg:n tag:w]",
		"map[level:INFO msg:o tag:out]",
	}
	if len(got) != len(want) {
		t.Fatalf("%d records; want %d:\n%s", len(got), len(want), b.String())
	}
	for i := range want {
		if s := fmt.Sprint(got[i]); s != want[i] {
			t.Errorf("record %d = %s; want %s", i, s, want[i])
		}
	}
}

// The tag logger is a well-behaved slog.Handler wrapper (testing/slogtest),
// with and without tags.
func TestTagLoggerSlogtest(t *testing.T) {
	for _, tags := range [][]slog.Attr{nil, {slog.String("tag", "v")}} {
		var b logBuffer
		h := statesync.TagLogger(newJSONLogger(&b), tags...).Handler()
		results := func() []map[string]any {
			var ms []map[string]any
			for _, line := range b.lines() {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				ms = append(ms, m)
			}
			return ms
		}
		if err := slogtest.TestHandler(h, results); err != nil {
			t.Errorf("tags %v: slogtest.TestHandler: %v", tags, err)
		}
	}
}

// B-LOG-06, B-LOG-01: a nil base gives a logger that discards everything
// and reports every level disabled, so callers skip the work.
func TestTagLoggerNilBase(t *testing.T) {
	log := statesync.TagLogger(nil, slog.String("a", "b"))
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if log.Enabled(context.Background(), l) {
			t.Errorf("TagLogger(nil).Enabled(%v) = true; want false", l)
		}
	}
	log.With("x", 1).WithGroup("g").Error("dropped") // no panic
}

// B-LOG-08: engine messages carry no prefix of their own, so a consumer
// logging through the console logger prints the prefix exactly once per
// line, whatever the level.
func TestConsumerConsoleLoggerPrefixOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b logBuffer
	log := statesync.NewConsoleLogger(&b, &statesync.ConsoleOptions{Debug: true})

	src, bus := newSourceBus(t)
	app := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil })
	c, err := statesync.NewConsumer("settings", bus, bus, app, &statesync.ConsumerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	if _, err := src.Put(ctx, "settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	bus.PublishRaw("settings", []byte(`{"topic":"settings","revision":"01"}`)) // an error record
	c.Stop()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	lines := b.lines()
	levels := map[string]bool{}
	for _, line := range lines {
		if !strings.HasPrefix(line, "[state-sync] ") || strings.Count(line, "state-sync") != 1 {
			t.Errorf("line %q; want the prefix [state-sync] once, at the start, and nowhere else", line)
		}
		if f := strings.Fields(line); len(f) > 1 {
			levels[f[1]] = true
		}
	}
	for _, l := range []string{"DEBUG", "ERROR"} {
		if !levels[l] {
			t.Errorf("no %s line among %q; want the engine's debug and error records", l, lines)
		}
	}
}

// B-LOG-07 with the engine: tags that collide with the consumer's own
// attributes (topic, component) are overridden, never duplicated.
func TestConsumerTagLoggerNoDuplicateKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b logBuffer
	log := statesync.TagLogger(newJSONLogger(&b), slog.String("windowId", "main"), slog.String("topic", "tag"))

	_, bus := newSourceBus(t)
	app := statesync.ApplierFunc(func(context.Context, statesync.Snapshot) error { return nil })
	c, err := statesync.NewConsumer("settings", bus, bus, app, &statesync.ConsumerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	bus.PublishRaw("settings", []byte(`{"topic":"settings","revision":"x"}`))
	c.Stop()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	recs := logRecords(t, &b) // fails on duplicate keys
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	for _, r := range recs {
		if r["topic"] != "settings" || r["windowId"] != "main" {
			t.Errorf("record %v; want topic=settings (the consumer's) and windowId=main (the tag)", r)
		}
	}
}

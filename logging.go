package statesync

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds two logging helpers built on [log/slog]: the console
// logger and the tag logger.
// The engine itself only needs a *slog.Logger ([ConsumerOptions.Logger]);
// these are conveniences for small programs and tests.

// DefaultConsolePrefix starts every line of a logger made by
// [NewConsoleLogger] unless [ConsoleOptions.Prefix] says otherwise.
const DefaultConsolePrefix = "[state-sync]"

// ConsoleOptions configures [NewConsoleLogger]. The zero value, or nil,
// gives the prefix "[state-sync]" and no debug records.
type ConsoleOptions struct {
	// Prefix starts every line, followed by a space. Empty means
	// [DefaultConsolePrefix].
	Prefix string
	// Debug enables debug records. Without it the minimum level is
	// [slog.LevelInfo]: debug records are dropped, and info, warn and error
	// records are written.
	Debug bool
}

// NewConsoleLogger returns a logger that writes one line per record to w,
// or to [os.Stderr] if w is nil:
//
//	[state-sync] WARN getSnapshot retry scheduled topic=settings attempt=1 nextDelay=500ms error="connection refused"
//
// Each line holds the prefix, the level, the message and the record's
// attributes (those added with [slog.Logger.With] first) as key=value pairs.
// The keys of attributes inside groups are joined with dots (req.id=7), and
// values (and messages) holding spaces, quotes, '=', control characters or
// invalid UTF-8 are written as Go quoted strings, so a record never spans two
// lines. Lines carry no time, for consoles that add their own; use [slog.NewTextHandler] where a timestamp is wanted.
//
// The prefix is the only place where the component is named: the engine's
// messages carry no prefix of their own, so it is printed once per line.
//
// The logger is safe for concurrent use: each line is written with a single
// call of w.Write, under a lock shared by every logger derived from it.
// Write errors are returned to slog, which drops them.
func NewConsoleLogger(w io.Writer, opts *ConsoleOptions) *slog.Logger {
	var o ConsoleOptions
	if opts != nil {
		o = *opts
	}
	if w == nil {
		w = os.Stderr
	}
	if o.Prefix == "" {
		o.Prefix = DefaultConsolePrefix
	}
	h := &consoleHandler{out: &consoleOutput{w: w}, prefix: o.Prefix, level: slog.LevelInfo}
	if o.Debug {
		h.level = slog.LevelDebug
	}
	return slog.New(h)
}

// consoleOutput is the writer shared by a console handler and the handlers
// derived from it.
type consoleOutput struct {
	mu sync.Mutex // serialises writes to w
	w  io.Writer
}

// consoleHandler is the slog.Handler of NewConsoleLogger. It is immutable:
// WithAttrs and WithGroup return modified copies.
type consoleHandler struct {
	out    *consoleOutput
	prefix string
	level  slog.Level
	attrs  []byte // " key=value" pairs added with WithAttrs, already formatted
	group  string // the open groups, as "a.b." (empty if none)
}

func (h *consoleHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *consoleHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 128+len(h.attrs))
	buf = append(buf, h.prefix...)
	buf = append(buf, ' ')
	buf = append(buf, r.Level.String()...)
	buf = append(buf, ' ')
	if consoleNeedsQuote(r.Message, false) {
		buf = strconv.AppendQuote(buf, r.Message)
	} else {
		buf = append(buf, r.Message...)
	}
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendConsoleAttr(buf, h.group, a)
		return true
	})
	buf = append(buf, '\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(buf)
	return err
}

func (h *consoleHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = slices.Clip(h.attrs) // appending must not share h's array
	for _, a := range attrs {
		h2.attrs = appendConsoleAttr(h2.attrs, h.group, a)
	}
	return &h2
}

func (h *consoleHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

// appendConsoleAttr appends " key=value" for a, following the rules of
// slog.Handler: values are resolved, empty attributes ignored, groups
// flattened (inlined if their key is empty, dropped if they are empty).
func appendConsoleAttr(buf []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			buf = appendConsoleAttr(buf, group, ga)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = appendConsoleString(buf, group+a.Key)
	buf = append(buf, '=')
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return appendConsoleString(buf, v.String())
	case slog.KindTime:
		return v.Time().AppendFormat(buf, time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return appendConsoleString(buf, x.Error())
		default:
			// Byte slices, json.RawMessage among them, are text.
			if rv := reflect.ValueOf(x); rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
				return appendConsoleString(buf, string(rv.Bytes()))
			}
			return appendConsoleString(buf, fmt.Sprint(x))
		}
	default: // numbers, booleans, durations
		return append(buf, v.String()...)
	}
}

func appendConsoleString(buf []byte, s string) []byte {
	if consoleNeedsQuote(s, true) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// consoleNeedsQuote reports whether s must be quoted to stay on one line
// and, if token is set, to be one unambiguous key or value: not empty, with
// no spaces, quotes or '='. Messages are not tokens: they may hold spaces.
func consoleNeedsQuote(s string, token bool) bool {
	if s == "" {
		return token
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f || token && (c == ' ' || c == '=' || c == '"') {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// TagLogger returns a logger that adds the static tags attrs to every record
// logged through it, at every level, leaving the level and the message
// unchanged: tags for the window, process or source a component
// runs in, for example.
//
// A record never carries the same key twice. The tags come first, in order;
// an attribute of the record (or one added later with [slog.Logger.With])
// whose key is a tag's replaces that tag's value in place, and so does a
// later attribute with the key of an earlier one: the last value wins, in the
// first place. Keys are compared at the
// top level; inside a group opened with [slog.Logger.WithGroup], the
// group's own attributes are merged the same way. [slog.Logger.With] itself
// keeps duplicate keys, hence this helper.
//
// Attributes that base already carries (added with base.With) are out of
// TagLogger's reach: pass them as tags instead. A nil base gives a logger
// that discards everything, as a nil [ConsumerOptions.Logger] does.
// The logger is safe for concurrent use if base is.
func TagLogger(base *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	if base == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(&tagHandler{h: base.Handler(), tags: mergeAttrs(nil, attrs)})
}

// tagHandler adds tags to the records it passes to h, merging keys. It is
// immutable.
type tagHandler struct {
	h    slog.Handler
	tags []slog.Attr // distinct keys, in order
}

func (t *tagHandler) Enabled(ctx context.Context, l slog.Level) bool { return t.h.Enabled(ctx, l) }

func (t *tagHandler) Handle(ctx context.Context, r slog.Record) error {
	if len(t.tags) == 0 && r.NumAttrs() < 2 {
		return t.h.Handle(ctx, r)
	}
	attrs := make([]slog.Attr, len(t.tags), len(t.tags)+r.NumAttrs())
	copy(attrs, t.tags)
	r.Attrs(func(a slog.Attr) bool {
		attrs = mergeAttr(attrs, a)
		return true
	})
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(attrs...)
	return t.h.Handle(ctx, nr)
}

func (t *tagHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return t
	}
	return &tagHandler{h: t.h, tags: mergeAttrs(slices.Clone(t.tags), attrs)}
}

// WithGroup hands the tags to h, outside the group; attributes and records
// from then on live inside the group, where they cannot collide with them.
func (t *tagHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	h := t.h
	if len(t.tags) > 0 {
		h = h.WithAttrs(t.tags)
	}
	return &tagHandler{h: h.WithGroup(name)}
}

// mergeAttrs adds attrs to dst, which has distinct keys: an attribute whose
// key is already in dst replaces that entry, others are appended. Groups with
// an empty key are inlined and empty attributes dropped, as handlers do. dst
// is modified in place.
func mergeAttrs(dst []slog.Attr, attrs []slog.Attr) []slog.Attr {
	for _, a := range attrs {
		dst = mergeAttr(dst, a)
	}
	return dst
}

// mergeAttr is mergeAttrs for one attribute.
func mergeAttr(dst []slog.Attr, a slog.Attr) []slog.Attr {
	if a.Key == "" {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			return mergeAttrs(dst, a.Value.Group())
		}
	}
	if a.Equal(slog.Attr{}) {
		return dst
	}
	for i := range dst {
		if dst[i].Key == a.Key {
			dst[i] = a
			return dst
		}
	}
	return append(dst, a)
}

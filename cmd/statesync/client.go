package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/sleep"
)

// defaultServer is the daemon's default address.
const defaultServer = "http://127.0.0.1:8765"

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	server string
	token  string
}

func (m *Main) addClientFlags(fs *flag.FlagSet) *clientFlags {
	cf := &clientFlags{server: m.Getenv("STATESYNC_SERVER"), token: m.Getenv("STATESYNC_TOKEN")}
	if cf.server == "" {
		cf.server = defaultServer
	}
	fs.StringVar(&cf.server, "server", cf.server, "server URL, or host:port (http:// for a loopback host, else https://) (STATESYNC_SERVER)")
	fs.StringVar(&cf.token, "token", cf.token, "bearer token (STATESYNC_TOKEN)")
	return cf
}

func (cf *clientFlags) client(log *slog.Logger) (*httpsync.Client, error) {
	base, err := serverURL(cf.server)
	if err != nil {
		return nil, err
	}
	return httpsync.NewClient(base, &httpsync.ClientOptions{Token: cf.token, Logger: log})
}

// revisionFlag is an optional --if-revision.
type revisionFlag struct {
	rev statesync.Revision
	set bool
}

func (f *revisionFlag) String() string {
	if !f.set {
		return ""
	}
	return f.rev.String()
}

func (f *revisionFlag) Set(s string) error {
	r, err := statesync.ParseRevision(s)
	if err != nil {
		return err
	}
	f.rev, f.set = r, true
	return nil
}

// oneTopic parses args and returns the single topic they name (and the
// other positional arguments).
func oneTopic(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		fs.Usage()
		return nil, errUsage
	}
	if err := statesync.CheckTopic(pos[0]); err != nil {
		return nil, err
	}
	return pos, nil
}

// printJSON writes v as one JSON line.
func (m *Main) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(m.Stdout, "%s\n", b)
	return err
}

// writeResult is what put, patch and delete print.
type writeResult struct {
	Topic    string             `json:"topic"`
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch,omitempty"`
}

// topicSnapshot is what get and watch print.
type topicSnapshot struct {
	Topic    string             `json:"topic"`
	Revision statesync.Revision `json:"revision"`
	Epoch    string             `json:"epoch,omitempty"`
	Data     json.RawMessage    `json:"data"`
}

func (m *Main) runGet(ctx context.Context, args []string) error {
	fs := m.newFlagSet("get", "[flags] TOPIC\n\nPrints the topic's snapshot: one JSON line (-o json), or for people (-o table).")
	cf := m.addClientFlags(fs)
	out := m.addOutputFlag(fs)
	pos, err := oneTopic(fs, args, 1)
	if err != nil {
		return err
	}
	if err := out.err(); err != nil {
		return err
	}
	c, err := cf.client(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Snapshot(ctx, pos[0])
	if err != nil {
		return err
	}
	snap := topicSnapshot{Topic: pos[0], Revision: s.Revision, Epoch: s.Epoch, Data: s.Data}
	if out.format == "table" {
		return m.printSnapshotTable(snap)
	}
	if out.format == "name" {
		_, err := fmt.Fprintln(m.Stdout, printable(snap.Topic))
		return err
	}
	return m.printJSON(snap)
}

// readData reads a JSON argument: inline JSON, @file, or - for stdin.
func (m *Main) readData(arg string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case arg == "-":
		b, err = io.ReadAll(m.Stdin)
	case strings.HasPrefix(arg, "@"):
		b, err = os.ReadFile(arg[1:])
	default:
		b = []byte(arg)
	}
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, fmt.Errorf("the data is not valid JSON: %.80q", b)
	}
	return b, nil
}

func (m *Main) runWrite(ctx context.Context, cmd string, args []string) error {
	synopsis := "[flags] TOPIC JSON|@FILE|-\n\nSets the topic's data and prints its new revision."
	want := 2
	switch cmd {
	case "patch":
		synopsis = "[flags] TOPIC JSON|@FILE|-\n\nApplies a JSON merge patch (RFC 7396) to the topic's data."
	case "delete":
		synopsis = "[flags] TOPIC\n\nSets the topic's data to null at a new revision."
		want = 1
	}
	fs := m.newFlagSet(cmd, synopsis)
	cf := m.addClientFlags(fs)
	var ifRev revisionFlag
	fs.Var(&ifRev, "if-revision", "write only if the topic is at this revision (compare-and-set; 0 for a new topic)")
	pos, err := oneTopic(fs, args, want)
	if err != nil {
		return err
	}
	topic := pos[0]
	var data json.RawMessage
	if want == 2 {
		if data, err = m.readData(pos[1]); err != nil {
			return err
		}
	}
	c, err := cf.client(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	var s statesync.Snapshot
	switch {
	case cmd == "patch" && ifRev.set:
		s, err = c.PatchIf(ctx, topic, data, ifRev.rev)
	case cmd == "patch":
		s, err = c.Patch(ctx, topic, data)
	case cmd == "delete" && ifRev.set:
		s, err = c.DeleteIf(ctx, topic, ifRev.rev)
	case cmd == "delete":
		s, err = c.Delete(ctx, topic)
	case ifRev.set:
		s, err = c.PutIf(ctx, topic, data, ifRev.rev)
	default:
		s, err = c.Put(ctx, topic, data)
	}
	var ce *statesync.ConflictError
	if errors.As(err, &ce) {
		return fmt.Errorf("conflict: %s is at revision %d, not %d", topic, ce.Current, ce.Expected)
	}
	if err != nil {
		return err
	}
	return m.printJSON(writeResult{Topic: topic, Revision: s.Revision, Epoch: s.Epoch})
}

func (m *Main) runTopics(ctx context.Context, args []string) error {
	fs := m.newFlagSet("topics", "[flags]\n\nLists the topics you may read: one JSON line each (-o json), a table (-o table) or their names (-o name).")
	cf := m.addClientFlags(fs)
	out := m.addOutputFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := out.err(); err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	c, err := cf.client(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	list, err := c.Topics(ctx)
	if err != nil {
		return err
	}
	return m.printTopics(list, out.format)
}

// runWatch follows topics with the Go engine over one event stream and
// prints each applied snapshot as a JSON line, until interrupted. If the
// server cannot be reached it keeps trying; a refusal that trying again
// cannot cure (no or unknown token, a topic outside the token's grants, a
// bad request) ends it with that error, as redis-cli and etcdctl do.
func (m *Main) runWatch(ctx context.Context, args []string) error {
	fs := m.newFlagSet("watch", "[flags] [TOPIC...]\n\nFollows the topics, and every topic under each --prefix, and prints every applied snapshot as one JSON line, until interrupted.")
	cf := m.addClientFlags(fs)
	verbose := fs.Bool("v", false, "log reconnects and errors to stderr")
	cacheDir := fs.String("cache", "", "keep the last snapshot of each topic in `DIR`; print it at once at start, even with the server down")
	var prefixes prefixesFlag
	fs.Var(&prefixes, "prefix", "also follow every topic whose name starts with `PREFIX` that the token may read, those created later included (repeatable; \"\" for every topic)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 && len(prefixes) == 0 {
		fs.Usage()
		return errUsage
	}
	if len(prefixes) > 0 && *cacheDir != "" {
		fmt.Fprintln(m.Stderr, "statesync watch: --cache keeps named topics only; it does not go with --prefix")
		return errUsage
	}
	for _, t := range pos {
		if err := statesync.CheckTopic(t); err != nil {
			return err
		}
	}
	for _, p := range prefixes {
		if p == "" {
			continue // every topic
		}
		// The beginning of a valid name: itself one, or one with a digit
		// more (as the server checks it).
		if err := statesync.CheckTopic(p); err != nil && statesync.CheckTopic(p+"0") != nil {
			return fmt.Errorf("prefix %q: %w", p, err)
		}
	}
	level := slog.LevelError + 1 // quiet: only the final error, if any
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
	copts := &httpsync.ClientOptions{Token: cf.token, Logger: log}
	if len(prefixes) > 0 {
		copts.Inline = prefixInline // the prefix streams' snapshots without a GET each
	}
	c, err := httpsync.NewClient(cf.server, copts)
	if err != nil {
		return err
	}
	defer c.Close()
	cache, err := openWatchCache(*cacheDir, log) // watch_cache.go
	if err != nil {
		return err
	}
	defer cache.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var outMu sync.Mutex // one line at a time
	var wg sync.WaitGroup
	var consumers []*statesync.Consumer
	for _, topic := range pos {
		app := statesync.ApplierFunc(func(_ context.Context, s statesync.Snapshot) error {
			outMu.Lock()
			defer outMu.Unlock()
			return m.printJSON(topicSnapshot{Topic: topic, Revision: s.Revision, Epoch: s.Epoch, Data: s.Data})
		})
		cons, err := statesync.NewConsumer(topic, c, c, cache.wrap(topic, app), &statesync.ConsumerOptions{
			Logger: log,
			Retry:  &statesync.RetryPolicy{MaxAttempts: 4, InitialDelay: 200 * time.Millisecond, Jitter: 1},
		})
		if err != nil {
			return err
		}
		consumers = append(consumers, cons)
		cache.hydrate(ctx, topic, cons)
		wg.Go(func() {
			if err := startUntilDone(ctx, cons, log); err != nil {
				cancel(fmt.Errorf("watch %s: %w", topic, err))
			}
		})
	}
	if len(prefixes) > 0 {
		pp := newPrefixPrinter(m, c, log, &outMu)
		wg.Go(func() {
			if err := pp.print(ctx); err != nil {
				cancel(err)
			}
		})
		for _, prefix := range prefixes {
			wg.Go(func() {
				stop, err := subscribePrefixUntilDone(ctx, c, prefix, pp, log)
				if err != nil {
					cancel(fmt.Errorf("watch --prefix %q: %w", prefix, err))
				}
				if stop != nil {
					<-ctx.Done()
					stop()
				}
			})
		}
	}
	<-ctx.Done()
	fatal := context.Cause(ctx)
	if errors.Is(fatal, context.Canceled) || errors.Is(fatal, context.DeadlineExceeded) {
		fatal = nil // interrupted: the normal end
	}
	for _, cons := range consumers {
		cons.Stop()
	}
	wg.Wait()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	for _, cons := range consumers {
		_ = cons.Wait(wctx)
	}
	return fatal
}

// startUntilDone starts cons, retrying with capped backoff while the
// server is unreachable, until it starts or ctx ends. It returns the error
// of a refusal that retrying cannot cure (see refused), and nil otherwise.
func startUntilDone(ctx context.Context, cons *statesync.Consumer, log *slog.Logger) error {
	delay := 250 * time.Millisecond
	for {
		err := cons.Start(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, statesync.ErrStopped) || errors.Is(err, statesync.ErrStartAfterStop) {
			return nil
		}
		if se := refused(err); se != nil {
			msg := fmt.Sprintf("the server refused: %d %s", se.StatusCode, http.StatusText(se.StatusCode))
			if se.Message != "" {
				msg += ": " + se.Message
			}
			if se.StatusCode == http.StatusUnauthorized {
				msg += " (give a valid token in STATESYNC_TOKEN)"
			}
			return errors.New(msg)
		}
		log.Warn("cannot start; retrying", slog.String("topic", cons.Topic()), slog.Any("error", err), slog.Duration("in", delay))
		if sleep.For(ctx, delay) != nil {
			return nil
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// refused returns the server's refusal in err of a request that would be
// refused again, or nil: a 4xx status other than 408 and 429 (401 no or
// unknown token, 403 a topic outside the grants, 400, 404).
func refused(err error) *httpsync.StatusError {
	var se *httpsync.StatusError
	if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && !se.Retryable() {
		return se
	}
	return nil
}

package koanfsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/knadh/koanf/v2"
	"github.com/statesync-go/statesync"
)

// ErrNotObject is returned when a topic's data is not a JSON object, which is
// the only shape a koanf configuration can take.
var ErrNotObject = errors.New("koanfsync: topic data is not a JSON object")

// ErrWatching is returned by [Provider.Watch] when the provider is already
// watching its topic.
var ErrWatching = errors.New("koanfsync: already watching")

// A Client pulls snapshots of a topic and delivers its invalidations, as
// httpsync.Client and memsync.Bus do. A subscriber and a provider that are
// separate values can be combined in a struct embedding both.
type Client interface {
	statesync.Subscriber
	statesync.Provider
}

// Options configures a [Provider]. Nil or zero fields mean the documented
// defaults; the options are copied by [New].
type Options struct {
	// Consumer configures the consumer that [Provider.Watch] runs
	// (throttling, retries, fetch timeout, logger). Its OnError, if set, is
	// called before the watch callback receives the error. Nil means the
	// defaults of statesync.ConsumerOptions.
	Consumer *statesync.ConsumerOptions
	// Timeout bounds each fetch of [Provider.ReadBytes] and [Provider.Read]
	// and the start of [Provider.Watch]. 0 means 30 s.
	Timeout time.Duration
	// NullAsEmpty makes a topic whose data is null (never written, or
	// deleted) read as an empty object instead of failing with
	// [ErrNotObject], so a service may start before its configuration is
	// written.
	NullAsEmpty bool
}

// A Provider is a koanf.Provider of a statesync topic that holds a JSON
// object, and a watcher of that topic in koanf's convention (see the package
// documentation).
//
// Its methods are safe for concurrent use.
type Provider struct {
	client Client
	topic  string
	opts   Options

	ctx    context.Context // cancelled by Close; bounds fetches and Start
	cancel context.CancelFunc

	mu       sync.Mutex // protects the fields below
	cur      *statesync.Snapshot
	watching bool
	closed   bool
	consumer *statesync.Consumer

	cbMu sync.Mutex // serializes the calls of the watch callback
}

var _ koanf.Provider = (*Provider)(nil)

// New returns a Provider of topic, pulling from and subscribing with client.
// It does no I/O. It returns an error wrapping statesync.ErrInvalidTopic for
// an invalid topic and statesync.ErrMissingDependency for a nil client.
func New(client Client, topic string, opts *Options) (*Provider, error) {
	if err := statesync.CheckTopic(topic); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%w: nil Client", statesync.ErrMissingDependency)
	}
	p := &Provider{client: client, topic: topic}
	if opts != nil {
		p.opts = *opts
	}
	if p.opts.Timeout < 0 {
		return nil, fmt.Errorf("koanfsync: negative Timeout %v", p.opts.Timeout)
	}
	if p.opts.Timeout == 0 {
		p.opts.Timeout = 30 * time.Second
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Topic returns the provider's topic.
func (p *Provider) Topic() string { return p.topic }

// Revision returns the revision of the configuration last read or applied,
// 0 before the first.
func (p *Provider) Revision() statesync.Revision {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.Revision
}

// ReadBytes implements koanf.Provider: it returns the JSON encoding of the
// topic's object, for koanf's JSON parser. Before [Provider.Watch] it fetches
// the topic's current snapshot; while watching it returns the snapshot last
// applied. It returns an error wrapping [ErrNotObject] if the data is not an
// object, statesync.ErrClosed after Close, and the provider's error if the
// fetch fails.
func (p *Provider) ReadBytes() ([]byte, error) {
	snap, err := p.snapshot()
	if err != nil {
		return nil, err
	}
	data, err := p.object(snap)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(data), nil
}

// Read implements koanf.Provider: it returns the topic's object decoded
// (numbers as float64, as koanf's JSON parser does), for use with a nil
// parser. It fails as [Provider.ReadBytes] does.
func (p *Provider) Read() (map[string]any, error) {
	b, err := p.ReadBytes()
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("koanfsync: topic %q: %w", p.topic, err)
	}
	return m, nil
}

// snapshot returns the snapshot held while watching, and otherwise fetches
// the current one.
func (p *Provider) snapshot() (statesync.Snapshot, error) {
	p.mu.Lock()
	closed, watching, cur := p.closed, p.watching, p.cur
	p.mu.Unlock()
	if closed {
		return statesync.Snapshot{}, fmt.Errorf("koanfsync: topic %q: %w", p.topic, statesync.ErrClosed)
	}
	if watching && cur != nil {
		return *cur, nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.Timeout)
	defer cancel()
	snap, err := p.client.Snapshot(ctx, p.topic)
	if err != nil {
		return statesync.Snapshot{}, fmt.Errorf("koanfsync: topic %q: %w", p.topic, err)
	}
	if _, err := p.object(snap); err == nil {
		p.mu.Lock()
		if p.cur == nil || p.cur.Epoch != snap.Epoch || snap.Revision > p.cur.Revision {
			p.cur = &snap
		}
		p.mu.Unlock()
	}
	return snap, nil
}

// object returns the data of snap if it is a JSON object, "{}" for null with
// NullAsEmpty, and otherwise an error wrapping ErrNotObject.
func (p *Provider) object(snap statesync.Snapshot) (json.RawMessage, error) {
	data := bytes.TrimSpace(snap.Data)
	kind := "null"
	if len(data) > 0 {
		switch data[0] {
		case '{':
			return data, nil
		case '[':
			kind = "an array"
		case '"':
			kind = "a string"
		case 't', 'f':
			kind = "a boolean"
		case 'n':
			kind = "null"
		default:
			kind = "a number"
		}
	}
	if kind == "null" && p.opts.NullAsEmpty {
		return json.RawMessage("{}"), nil
	}
	return nil, fmt.Errorf("%w: topic %q at revision %d holds %s", ErrNotObject, p.topic, snap.Revision, kind)
}

// Watch follows the topic and calls cb(nil, nil) after each newer snapshot
// holding an object has been applied, so that cb can reload the
// configuration (see the package documentation), and cb(nil, err) for each
// error the consumer reports (a snapshot that is not an object included;
// reports of retries still scheduled excepted). Calls of cb never overlap;
// cb must not call [Provider.Close].
//
// Watch returns once the consumer has subscribed and applied the topic's
// current snapshot; if that snapshot differs from the one last read, cb is
// called for it (possibly before Watch returns). Watch returns [ErrWatching]
// if the provider is already watching, statesync.ErrClosed after Close, and
// the consumer's start-up error otherwise, after which it may be called
// again.
func (p *Provider) Watch(cb func(event any, err error)) error {
	if cb == nil {
		return errors.New("koanfsync: nil watch callback")
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return fmt.Errorf("koanfsync: topic %q: %w", p.topic, statesync.ErrClosed)
	case p.watching:
		p.mu.Unlock()
		return ErrWatching
	}
	p.watching = true
	p.mu.Unlock()

	var copts statesync.ConsumerOptions
	if p.opts.Consumer != nil {
		copts = *p.opts.Consumer
	}
	userOnError := copts.OnError
	copts.OnError = func(e *statesync.Error) {
		if userOnError != nil {
			userOnError(e)
		}
		if e.WillRetry {
			return
		}
		p.call(cb, e)
	}
	app := statesync.ApplierFunc(func(ctx context.Context, snap statesync.Snapshot) error {
		if _, err := p.object(snap); err != nil {
			return err
		}
		p.mu.Lock()
		same := p.cur != nil && p.cur.Revision == snap.Revision && p.cur.Epoch == snap.Epoch
		p.cur = &snap
		p.mu.Unlock()
		if !same {
			p.call(cb, nil)
		}
		return nil
	})
	c, err := statesync.NewConsumer(p.topic, p.client, p.client, app, &copts)
	if err == nil {
		p.mu.Lock()
		if p.closed {
			err = fmt.Errorf("koanfsync: topic %q: %w", p.topic, statesync.ErrClosed)
		} else {
			p.consumer = c
		}
		p.mu.Unlock()
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(p.ctx, p.opts.Timeout)
		err = c.Start(ctx)
		cancel()
		if err != nil {
			c.Stop()
			_ = c.Wait(context.Background())
		}
	}
	if err != nil {
		p.mu.Lock()
		if p.consumer == c {
			p.consumer = nil
		}
		p.watching = false
		p.mu.Unlock()
		return err
	}
	return nil
}

// call calls cb, one call at a time.
func (p *Provider) call(cb func(any, error), err error) {
	p.cbMu.Lock()
	defer p.cbMu.Unlock()
	if err != nil {
		cb(nil, err)
		return
	}
	cb(nil, nil)
}

// Close stops watching and waits for the consumer's goroutines, a callback
// running included; afterwards reads and Watch return statesync.ErrClosed.
// It does not close the client. Close is idempotent and must not be called
// from the watch callback.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	c := p.consumer
	p.consumer = nil
	p.mu.Unlock()
	p.cancel()
	if c != nil {
		c.Stop()
		return c.Wait(context.Background())
	}
	return nil
}

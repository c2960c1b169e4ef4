package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
)

// inlineLimit is the ClientOptions.Inline of the consumers in inline mode:
// the scenarios' snapshots are far smaller, so every one rides in its
// event.
const inlineLimit = 4096

// startParallel is how many consumers start (or stop) at a time.
const startParallel = 64

// A fleet is the consumers of an SSE scenario: each a [statesync.Consumer]
// on the topic with an [httpsync.Client] of its own, over an
// [http.Transport] of its own, as separate client processes would have,
// connecting from an address of its own (see sourceIP).
//
// A consumer holds two connections once it has made a snapshot GET: its
// event stream, and the idle one its transport keeps for the next GET. When
// the open-file limit cannot hold two per consumer (in this process and in
// the server's; 10,000 consumers need 20,000 descriptors in each, and
// 20,000 is a common hard limit), the transports keep no idle connection
// (DisableKeepAlives) and each GET opens and closes a connection of its own,
// which costs a TCP handshake and an accept per GET.
type fleet struct {
	origin    time.Time // apply and write times are offsets from it, by the wall clock
	hs        []*handle
	keepAlive bool // the transports keep idle connections

	retries  atomic.Int64                    // retries of snapshot GETs the consumers reported
	errs     atomic.Int64                    // errors the consumers reported, retries excluded
	firstErr atomic.Pointer[statesync.Error] // the first of them
}

// A handle is one consumer, its client and what it applied.
type handle struct {
	f  *fleet
	tr *http.Transport
	cl *httpsync.Client
	c  *statesync.Consumer
	// trace records the client's stream connects and failures.
	trace *connTrace

	mu  sync.Mutex // protects log
	log []applyRec
}

// applyRec is one apply: the snapshot's revision and epoch, and when.
type applyRec struct {
	rev   statesync.Revision
	epoch string
	at    time.Duration // since the fleet's origin
}

// Apply implements [statesync.Applier]: it records the apply.
func (h *handle) Apply(_ context.Context, s statesync.Snapshot) error {
	at := h.f.since()
	h.mu.Lock()
	h.log = append(h.log, applyRec{rev: s.Revision, epoch: s.Epoch, at: at})
	h.mu.Unlock()
	return nil
}

// applies returns a copy of the handle's applies so far.
func (h *handle) applies() []applyRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]applyRec(nil), h.log...)
}

// sourceIP returns the loopback address consumer i connects from, on
// Linux, where all of 127.0.0.0/8 is local: 127.1.0.1 and on, one per
// consumer, as separate machines would have. Connecting from one address
// makes connect(2) search a crowded ephemeral port range (10,000 streams,
// plus GET connections and their TIME_WAIT entries), which took more of the
// consumers' CPU than everything else together. Elsewhere it returns nil:
// the system picks the address.
func sourceIP(i int) net.IP {
	if runtime.GOOS != "linux" {
		return nil
	}
	return net.IPv4(127, 1+byte(i/(250*250)), byte(i/250%250), byte(i%250+1))
}

// since returns the time from the fleet's origin to now by the wall clock,
// so that it compares with times taken in other processes.
func (f *fleet) since() time.Duration {
	return time.Duration(time.Now().UnixNano() - f.origin.UnixNano())
}

// wallOffset returns the Unix nanoseconds t as an offset from the fleet's
// origin.
func (f *fleet) wallOffset(t int64) time.Duration { return time.Duration(t - f.origin.UnixNano()) }

// newFleet makes n consumers of the server at base, in inline mode or
// pull mode, and starts them, startParallel at a time. Each consumer's
// Start returns once its stream is open and its first snapshot applied.
// With cert (the PEM certificate of a TLS server), they speak HTTP/2 to
// it: each consumer's GETs share its stream's connection.
func newFleet(ctx context.Context, base string, cert []byte, n int, inline, inlineRefresh bool, origin time.Time) (*fleet, error) {
	limit, err := raiseOpenFiles(descriptorsFor(n), fmt.Sprintf("%d SSE consumers", n))
	if err != nil {
		return nil, err
	}
	f := &fleet{origin: origin, hs: make([]*handle, n), keepAlive: cert != nil || limit >= keepAliveDescriptors(n)}
	for i := range f.hs {
		h, err := f.newHandle(base, cert, inline, inlineRefresh, i)
		if err != nil {
			f.close()
			return nil, err
		}
		f.hs[i] = h
	}
	if err := f.each(func(h *handle) error { return h.c.Start(ctx) }); err != nil {
		f.close()
		return nil, fmt.Errorf("starting %d consumers: %w", n, err)
	}
	return f, nil
}

func (f *fleet) newHandle(base string, cert []byte, inline, inlineRefresh bool, i int) (*handle, error) {
	tr, err := transportFor(cert)
	if err != nil {
		return nil, err
	}
	tr.DisableKeepAlives = !f.keepAlive
	h := &handle{f: f, tr: tr, trace: &connTrace{f: f}}
	if ip := sourceIP(i); ip != nil {
		h.tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext
	}
	opts := &httpsync.ClientOptions{HTTPClient: &http.Client{Transport: h.tr}, Logger: slog.New(h.trace)}
	if inline {
		opts.Inline = inlineLimit
	}
	cl, err := httpsync.NewClient(base, opts)
	if err != nil {
		return nil, err
	}
	h.cl = cl
	h.c, err = statesync.NewConsumer(topic, cl, cl, h, &statesync.ConsumerOptions{
		// A snapshot GET that fails (a connection refused while the server
		// restarts) is tried again, as a real client would.
		Retry:         &statesync.RetryPolicy{MaxAttempts: 6, InitialDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, Jitter: 1},
		OnError:       f.reported,
		InlineRefresh: inlineRefresh,
	})
	if err != nil {
		_ = cl.Close()
		return nil, err
	}
	return h, nil
}

func (f *fleet) reported(e *statesync.Error) {
	if e.WillRetry {
		f.retries.Add(1)
		return
	}
	f.errs.Add(1)
	f.firstErr.CompareAndSwap(nil, e)
}

// err returns an error describing the consumers' reported errors, or nil.
func (f *fleet) err() error {
	n := f.errs.Load()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("the consumers reported %d errors, the first: %w", n, f.firstErr.Load())
}

// each calls fn for every handle, startParallel at a time, and returns the
// first error.
func (f *fleet) each(fn func(*handle) error) error {
	sem := make(chan struct{}, startParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, h := range f.hs {
		if h == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(h); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// close stops every consumer, waits for its goroutines and closes its
// client.
func (f *fleet) close() {
	_ = f.each(func(h *handle) error {
		h.c.Stop()
		_ = h.c.Wait(context.Background()) // returns once an in-flight GET, cancelled by Stop, does
		_ = h.cl.Close()
		h.tr.CloseIdleConnections()
		return nil
	})
}

// waitUntil polls every handle's consumer until done is true of all of
// them, ctx ends or timeout passes; it reports whether they all got there.
func (f *fleet) waitUntil(ctx context.Context, timeout time.Duration, done func(*statesync.Consumer) bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	next := 0 // handles before next are done; they stay done
	for {
		for next < len(f.hs) && done(f.hs[next].c) {
			next++
		}
		if next == len(f.hs) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// errNotConverged is returned by the herd when a consumer does not come
// back in time.
var errNotConverged = errors.New("not every consumer came back to the latest revision")

package httpsync_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statesync-go/statesync"
	"github.com/statesync-go/statesync/httpsync"
	"github.com/statesync-go/statesync/internal/lockedbuf"
	"github.com/statesync-go/statesync/internal/poll"
)

// refusedFrame is the payload of a refused frame.
type refusedFrame struct {
	Topic   string `json:"topic"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// A stream naming a topic the token may not read, or an invalid topic,
// is accepted: it refuses that topic alone, in a refused frame right
// after the retry hint, and follows the others.
func TestEventsRefusedTopicAlone(t *testing.T) {
	s := newAuthServer(t)
	for _, tc := range []struct {
		name, path, refused, code string
	}{
		{"forbidden", "/v1/events?topic=settings&topic=secret&topic=cache:a", "secret", httpsync.CodeForbidden},
		{"invalid", "/v1/events?topic=settings&topic=..&topic=cache:a", "..", httpsync.CodeInvalidTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := s.openStream(t, tc.path, "Authorization", "Bearer worker-secret")
			if f := st.next(t); f.retry == "" {
				t.Fatalf("first frame = %+v; want the retry hint", f)
			}
			f := st.nextEvent(t)
			var r refusedFrame
			mustJSON(t, []byte(f.data), &r)
			if f.event != "refused" || r.Topic != tc.refused || r.Code != tc.code || !strings.Contains(r.Message, tc.refused) {
				t.Fatalf("frame after the retry hint = %+v; want event refused for %q, code %s, a message naming it", f, tc.refused, tc.code)
			}
			seen := map[string]bool{}
			for range 2 {
				inv := decodeInv(t, st.nextEvent(t))
				seen[inv.Topic] = true
			}
			if !seen["settings"] || !seen["cache:a"] {
				t.Fatalf("initial frames for %v; want settings and cache:a", seen)
			}
			for i := range 5 {
				s.put(t, "secret", `"hidden"`)
				topic := []string{"settings", "cache:a"}[i%2]
				want := s.put(t, topic, `{"n":1}`)
				inv := decodeInv(t, st.nextEvent(t))
				if inv.Topic != topic || inv.Revision != want.Revision {
					t.Fatalf("frame after write %d = %+v; want %s at %d", i, inv, topic, want.Revision)
				}
			}
		})
	}
}

// A stream none of whose topics may be followed gets its refused frames,
// then ends. Too many topics, even refused ones, is still a 400.
func TestEventsAllRefused(t *testing.T) {
	s := newAuthServer(t)
	st := s.openStream(t, "/v1/events?topic=secret&topic=inbox&topic=secret", "Authorization", "Bearer worker-secret")
	st.next(t) // retry hint
	for _, want := range []string{"secret", "inbox"} {
		f := st.nextEvent(t)
		var r refusedFrame
		mustJSON(t, []byte(f.data), &r)
		if f.event != "refused" || r.Topic != want || r.Code != httpsync.CodeForbidden {
			t.Fatalf("frame = %+v; want refused %s", f, want)
		}
	}
	if b, err := io.ReadAll(st.br); err != nil || len(b) != 0 {
		t.Fatalf("after the refused frames: %q, %v; want the end of the stream", b, err)
	}
	if got := s.h.Stats().StreamsOpen; got != 0 {
		t.Errorf("StreamsOpen = %d; want 0", got)
	}

	s2 := newTestServer(t, &httpsync.HandlerOptions{MaxStreamTopics: 2})
	resp, body := s2.do(t, "GET", "/v1/events?topic=a&topic=b&topic=c%20d", "")
	if resp.StatusCode != 400 || decodeError(t, body).Error.Code != httpsync.CodeInvalidParameter {
		t.Errorf("3 topics over a limit of 2 = %d %s; want 400 invalid_parameter", resp.StatusCode, body)
	}
}

// Two consumers on one Client, one of a topic the token may not read: the
// Start of that one fails with a non-retryable error naming the topic,
// and the other follows every write over the same stream, whether it
// started before the refused one or together with it.
func TestClientRefusedTopicFailsAlone(t *testing.T) {
	for _, together := range []bool{false, true} {
		t.Run(map[bool]string{false: "after", true: "together"}[together], func(t *testing.T) {
			s := newAuthServer(t)
			c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Token: "worker-secret"})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			secret, err := statesync.NewConsumer("secret", c, c, &recorder{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer secret.Stop()
			var con *statesync.Consumer
			var startErr error
			if together {
				var wg sync.WaitGroup
				wg.Go(func() { con, _ = startConsumer(t, c, "settings", nil) })
				wg.Go(func() { startErr = secret.Start(ctx) })
				wg.Wait()
			} else {
				con, _ = startConsumer(t, c, "settings", nil)
				startErr = secret.Start(ctx)
			}
			var se *httpsync.StatusError
			if !errors.As(startErr, &se) || se.StatusCode != http.StatusForbidden || se.Code != httpsync.CodeForbidden ||
				statesync.IsRetryable(startErr) || !strings.Contains(startErr.Error(), `"secret"`) || !strings.Contains(se.URL, "/v1/events") {
				t.Fatalf("Start(secret) = %v; want the stream's refusal: a non-retryable 403 forbidden naming the topic", startErr)
			}
			for i := range 5 {
				s.put(t, "secret", strconv.Itoa(i))
				want := s.put(t, "settings", strconv.Itoa(i))
				poll.Until(t, "settings at revision "+want.Revision.String(), func() bool { return con.Revision() == want.Revision })
			}
			// One stream, kept open for settings after secret was refused.
			poll.Until(t, "one stream open", func() bool { return s.h.Stats().StreamsOpen == 1 })
		})
	}
}

// A topic the stream followed and the server refuses after a reconnection
// (its grants were revoked) is logged and no longer followed; the others
// go on.
func TestClientTopicRefusedAfterReconnect(t *testing.T) {
	var revoked atomic.Bool
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &connTracker{Listener: inner}
	s := newTestServerOn(t, ln, testEpoch, &httpsync.HandlerOptions{Auth: authFunc(func(r *http.Request) (httpsync.Grants, error) {
		return grantsFunc(func(topic string) bool { return topic == "a" || (topic == "b" && !revoked.Load()) }), nil
	})})
	s.put(t, "a", `0`)
	before := s.put(t, "b", `0`)
	var logs lockedbuf.Buffer
	c := newClient(t, s.ts.URL, &httpsync.ClientOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a, _ := startConsumer(t, c, "a", nil)
	b, _ := startConsumer(t, c, "b", nil)
	revoked.Store(true)
	ln.closeAll() // hijacked streams too, which the http.Server no longer tracks
	poll.Until(t, "the refusal logged", func() bool {
		return strings.Contains(logs.String(), "refused a topic") && strings.Contains(logs.String(), "topic=b")
	})
	for i := range 5 {
		s.put(t, "b", strconv.Itoa(i))
		want := s.put(t, "a", strconv.Itoa(i))
		poll.Until(t, "a at revision "+want.Revision.String(), func() bool { return a.Revision() == want.Revision })
	}
	if b.Revision() != before.Revision {
		t.Errorf("b at revision %d; want %d (no longer followed)", b.Revision(), before.Revision)
	}
}

// grantsFunc reads what the function allows and writes nothing.
type grantsFunc func(topic string) bool

func (f grantsFunc) CanRead(topic string) bool { return f(topic) }
func (f grantsFunc) CanWrite(string) bool      { return false }

// connTracker is a listener that can close every connection it accepted,
// hijacked ones included.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// closeAll closes every connection accepted so far.
func (l *connTracker) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

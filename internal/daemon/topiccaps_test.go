package daemon_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
)

// --max-stream-topics and --max-prefix-topics reach the handler: a stream
// naming more topics than the first, or whose prefix matches more than the
// second, is refused with 400; one within both opens.
func TestStreamTopicCaps(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxStreamTopics = 2
	cfg.MaxPrefixTopics = 2
	d := startDaemon(t, cfg)
	for _, topic := range []string{"p:1", "p:2", "p:3"} {
		d.expect(t, http.StatusOK, http.MethodPut, "/v1/topics/"+topic, `{"n":1}`)
	}

	b := d.expect(t, http.StatusBadRequest, http.MethodGet, "/v1/events?topic=a&topic=b&topic=c", "")
	if e := decodeError(t, b); e.Code != "invalid_parameter" {
		t.Errorf("three named topics with --max-stream-topics 2: code %q (%s); want invalid_parameter", e.Code, b)
	}
	b = d.expect(t, http.StatusBadRequest, http.MethodGet, "/v1/events?prefix=p:", "")
	if e := decodeError(t, b); e.Code != "too_many_topics" {
		t.Errorf("a prefix matching three topics with --max-prefix-topics 2: code %q (%s); want too_many_topics", e.Code, b)
	}

	named := d.openStream(t, "/v1/events?topic=a&topic=b")
	named.close()
	prefixed := d.openStream(t, "/v1/events?prefix=p:1")
	if ev := prefixed.next(t); ev.inv(t).Topic != "p:1" {
		t.Errorf("prefix p:1 stream's first event is for %q; want p:1", ev.inv(t).Topic)
	}
	prefixed.close()
}

// --reconnect-rate reaches the handler: at shutdown, the streams end with
// retry fields of 500 ms plus i/rate seconds for the i-th, in some order;
// with a negative rate, with none (the stream's first hint stays).
func TestReconnectRate(t *testing.T) {
	for _, tt := range []struct {
		rate int
		want []string
	}{{1, []string{"1500", "2500", "500"}}, {-1, []string{"2000", "2000", "2000"}}} {
		cfg := testConfig(t)
		cfg.ReconnectRate = tt.rate
		d := startDaemon(t, cfg)
		d.expect(t, http.StatusOK, http.MethodPut, "/v1/topics/a", `1`)
		var streams []*sseStream
		for range 3 {
			s := d.openStream(t, "/v1/events?topic=a")
			s.next(t)
			streams = append(streams, s)
		}
		d.down = true
		if err := d.s.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		var got []string
		for _, s := range streams {
			_ = s.ended(t, waitFor)
			got = append(got, s.retry)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("--reconnect-rate %d: the streams' last retry fields are %q; want %q", tt.rate, got, tt.want)
		}
	}
}

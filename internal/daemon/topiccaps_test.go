package daemon_test

import (
	"net/http"
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

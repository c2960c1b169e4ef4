package bench

import (
	"fmt"
	"math"
	"strings"
)

// SSESizes are the sizes of the SSE scenarios.
type SSESizes struct {
	// Fanout lists the sse_fanout runs; each runs twice, in pull mode and
	// in inline mode.
	Fanout []SSEFanoutSize
	// HerdConsumers is the number of consumers of sse_reconnect_herd.
	HerdConsumers int
}

// An SSEFanoutSize is the size of one sse_fanout run.
type SSEFanoutSize struct {
	Consumers int // handles, each with its own client and connection
	Writes    int // writes through the HTTP API, one per interval
	// HTTP2 makes the run one in pull mode over HTTP/2 (TLS) only, instead
	// of the runs over HTTP/1.1 (see sse_tls.go): sse_fanout=NxW/h2.
	HTTP2 bool
}

func (f SSEFanoutSize) String() string {
	if f.HTTP2 {
		return fmt.Sprintf("%dx%d/h2", f.Consumers, f.Writes)
	}
	return fmt.Sprintf("%dx%d", f.Consumers, f.Writes)
}

// DefaultSSESizes returns the sizes of scenarios.md: sse_fanout with 1,000
// and 10,000 consumers and 20 writes, sse_reconnect_herd with 10,000
// consumers.
func DefaultSSESizes() SSESizes {
	return SSESizes{
		Fanout:        []SSEFanoutSize{{Consumers: 1_000, Writes: 20}, {Consumers: 10_000, Writes: 20}},
		HerdConsumers: 10_000,
	}
}

// Scale returns s with every size multiplied by f, each at least 1.
func (s SSESizes) Scale(f float64) SSESizes {
	sc := func(n int) int { return max(1, int(math.Round(float64(n)*f))) }
	out := SSESizes{HerdConsumers: sc(s.HerdConsumers)}
	for _, fs := range s.Fanout {
		out.Fanout = append(out.Fanout, SSEFanoutSize{sc(fs.Consumers), sc(fs.Writes), fs.HTTP2})
	}
	return out
}

// set sets the size of the SSE scenario name from val, for [ParseSizes]:
// sse_fanout=CONSUMERSxWRITES[/h2] (repeatable: the first one replaces the
// default runs, later ones add to it; *fanoutSet records that the first
// was seen; /h2 asks for one run in pull mode over HTTP/2) or
// sse_reconnect_herd=CONSUMERS.
func (s *SSESizes) set(name, val string, fanoutSet *bool) error {
	switch name {
	case NameSSEFanout:
		val, h2 := strings.CutSuffix(val, "/h2")
		c, w, ok := strings.Cut(val, "x")
		if !ok {
			return fmt.Errorf("%q is not CONSUMERSxWRITES", val)
		}
		f := SSEFanoutSize{HTTP2: h2}
		var err error
		if f.Consumers, err = parseCount(c, 1); err != nil {
			return err
		}
		if f.Writes, err = parseCount(w, 1); err != nil {
			return err
		}
		if !*fanoutSet {
			s.Fanout, *fanoutSet = nil, true
		}
		s.Fanout = append(s.Fanout, f)
	case NameSSEReconnectHerd:
		n, err := parseCount(val, 1)
		if err != nil {
			return err
		}
		s.HerdConsumers = n
	default:
		return fmt.Errorf("unknown scenario %q", name)
	}
	return nil
}

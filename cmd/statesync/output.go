package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf16"

	"github.com/statesync-go/statesync"
)

// serverURL returns the base URL that --server s names. A URL with a
// scheme is taken as it is; host:port, host or :port without one is
// http:// for a loopback host (localhost, *.localhost, 127.0.0.0/8, ::1;
// :port is 127.0.0.1) and https:// for any other, so that a token never
// crosses the network in clear unless the user writes http:// himself.
func serverURL(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("--server is empty: give host:port or a URL like %s", defaultServer)
	}
	if strings.Contains(s, "://") {
		return s, nil
	}
	if strings.HasPrefix(s, ":") {
		s = "127.0.0.1" + s
	}
	u, err := url.Parse("http://" + s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--server %q: give host:port or a URL like %s", s, defaultServer)
	}
	if !loopbackHost(u.Hostname()) {
		u.Scheme = "https"
	}
	return u.String(), nil
}

// loopbackHost reports whether host names this machine.
func loopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// outputFlag is -o: json (one JSON line per item, for programs), table
// (aligned columns, for people) or name (topic names only, one a line).
// Its default is table when stdout is a terminal, json otherwise
// (STATESYNC_OUTPUT overrides that default).
type outputFlag struct {
	format string
	envErr error // a bad STATESYNC_OUTPUT, reported unless -o is given
	set    bool  // -o was given
}

var outputFormats = []string{"json", "table", "name"}

func (o *outputFlag) String() string { return o.format }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(outputFormats, s) {
		return fmt.Errorf("want %s", strings.Join(outputFormats, ", "))
	}
	o.format, o.set = s, true
	return nil
}

// err returns the error of a bad STATESYNC_OUTPUT that -o did not
// override.
func (o *outputFlag) err() error {
	if o.set {
		return nil
	}
	return o.envErr
}

// addOutputFlag adds -o to fs.
func (m *Main) addOutputFlag(fs *flag.FlagSet) *outputFlag {
	o := &outputFlag{format: "json"}
	if isTerminal(m.Stdout) {
		o.format = "table"
	}
	if v := m.Getenv("STATESYNC_OUTPUT"); v != "" {
		if slices.Contains(outputFormats, v) {
			o.format = v
		} else {
			o.envErr = fmt.Errorf("STATESYNC_OUTPUT=%q: want %s", v, strings.Join(outputFormats, ", "))
		}
	}
	fs.Var(o, "o", "output format: json (one JSON line each), table or name; default table on a terminal, else json (STATESYNC_OUTPUT)")
	return o
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printable escapes, as JSON \u escapes, every rune of s that is not
// printable (line breaks and spaces aside), so that a topic name or a
// value sent by the server cannot move the cursor or retitle the
// terminal (C1 controls such as U+009B are valid in JSON strings). Inside
// a JSON string the result is the same JSON value; the table's topics
// and epochs never hold such runes unless the server misbehaves.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\n' && r != ' ' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// printSnapshotTable prints a snapshot for people: its topic, revision and
// epoch, then its data indented.
func (m *Main) printSnapshotTable(s topicSnapshot) error {
	var data bytes.Buffer
	if err := json.Indent(&data, s.Data, "", "  "); err != nil {
		data.Reset()
		data.Write(s.Data)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TOPIC\tREVISION\tEPOCH\n%s\t%s\t%s\n", printable(s.Topic), s.Revision, printable(s.Epoch))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(m.Stdout, "\n%s\n", printable(data.String()))
	return err
}

// printTopics prints a topic list in format.
func (m *Main) printTopics(list []statesync.TopicInfo, format string) error {
	switch format {
	case "name":
		for _, t := range list {
			if _, err := fmt.Fprintln(m.Stdout, printable(t.Topic)); err != nil {
				return err
			}
		}
		return nil
	case "table":
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tREVISION\tEPOCH")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", printable(t.Topic), t.Revision, printable(t.Epoch))
		}
		return tw.Flush()
	}
	for _, t := range list {
		if err := m.printJSON(t); err != nil {
			return err
		}
	}
	return nil
}

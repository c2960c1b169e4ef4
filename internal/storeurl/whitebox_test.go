package storeurl

import "testing"

func TestQuotesUserinfo(t *testing.T) {
	for _, tt := range []struct {
		raw, msg string
		want     bool
	}{
		{"p://u:pw/x@h", `invalid port ":pw" after host`, true},
		{"p://u:pw@h:x y", `invalid port ":x y" after host`, false},
		{"p://h:pw", `invalid port ":pw" after host`, false}, // no @, no user information
		{"p://u:a%zz@h", `invalid URL escape "%zz"`, true},
		{"p://u:a@h%zz", `invalid URL escape "%zz"`, false},
		{"p://u:a@h", `first "x", then "a"`, true},                  // not only the first quote
		{"p://u:a@h", `first "x", then "y"`, false},                 // nothing quoted from before the @
		{"p://u:pw@h", `"pw"`, true},                                // a quote right at the start
		{"p://u:pw@h", `"\x70w"`, true},                             // quoted as Go does: read unquoted
		{"p://u:pw@h", `invalid port ":" after host`, false},        // nothing but the colon
		{"p://u:pw@h", `invalid port "" after host`, false},         // nothing at all
		{"p://u:pw@h", `unterminated "pw`, true},                    // unreadable: taken as quoting
		{"p://u:pw@h", "net/url: invalid userinfo", false},          // quotes nothing
		{"p://u:x:pw@h@i", `invalid port ":pw@h" after host`, true}, // up to the last @
		{"@h:pw", `invalid port ":pw" after host`, false},           // an @ first: nothing before it
		{"p://u::pw@h", `invalid port "::pw" after host`, true},     // one colon trimmed only
		{"p://u:pw@h", `invalid character ":" in host name`, false}, // a lone colon
	} {
		if got := quotesUserinfo(tt.raw, tt.msg); got != tt.want {
			t.Errorf("quotesUserinfo(%q, %q) = %v; want %v", tt.raw, tt.msg, got, tt.want)
		}
	}
}

package storeurl_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/statesync-go/statesync/internal/storeurl"
)

// A store takes its options out of its URL and hands the rest to its
// driver.
func Example() {
	errBadURL := errors.New("xstore: invalid store URL")
	u, q, err := storeurl.Parse("xstore://app:secret@db:5432/app?prefix=p1&feed_probe=2s&pool_size=4", errBadURL)
	if err != nil {
		fmt.Println(err)
		return
	}
	prefix, err := q.Take("prefix")
	if err != nil {
		fmt.Println(err)
		return
	}
	probe, err := q.Duration("feed_probe", 10*time.Millisecond)
	if err != nil {
		fmt.Println(err)
		return
	}
	u.RawQuery = q.Rest().Encode()
	fmt.Println(prefix, probe, u.Redacted())

	_, _, err = storeurl.Parse("xstore://app:se/cret@db/app", errBadURL)
	fmt.Println(err)
	// Output:
	// p1 2s xstore://app:xxxxx@db:5432/app?pool_size=4
	// xstore: invalid store URL: cannot parse it (details hidden: they would quote the user name or password; percent-encode any of % / ? # @ : in those)
}

// Package koanfsync makes a statesync topic a configuration source of koanf
// (github.com/knadh/koanf/v2), so that a service's configuration follows a
// topic on a statesync server (the daemon) and reloads when it changes.
//
// It lives in a module of its own, so that users of statesync who do not use
// koanf never download it.
//
// # Model
//
// A [Provider] is a koanf.Provider for one topic whose data is a JSON object.
// [Provider.ReadBytes] returns the object's JSON encoding, for koanf's JSON
// parser (github.com/knadh/koanf/parsers/json); [Provider.Read] returns it
// decoded, for a nil parser. Before [Provider.Watch] each read fetches the
// topic's current snapshot from the provider; once watching, reads return the
// snapshot last applied, without I/O, so a reload in the watch callback sees
// exactly the configuration the callback announced.
//
// [Provider.Watch] follows the topic with a statesync.Consumer: invalidations
// older than the configuration held are dropped, bursts collapse into one
// pull, and each newer snapshot that is a JSON object is applied and announced
// by calling the callback with (nil, nil), koanf's watch convention (its file
// provider calls back the same way). [Provider.Close] stops the consumer and
// waits for it.
//
// # Hot reload
//
// koanf instances are not meant to be reloaded in place while other goroutines
// read them. Load a new instance in the callback and swap it atomically:
//
//	var cfg atomic.Pointer[koanf.Koanf]
//
//	p, err := koanfsync.New(client, "settings", nil)
//	k := koanf.New(".")
//	if err := k.Load(p, json.Parser()); err != nil { … }
//	cfg.Store(k)
//
//	err = p.Watch(func(_ any, err error) {
//		if err != nil {
//			log.Printf("config: %v", err) // the previous configuration stays
//			return
//		}
//		k := koanf.New(".")
//		if err := k.Load(p, json.Parser()); err != nil {
//			log.Printf("config: %v", err)
//			return
//		}
//		cfg.Store(k)
//	})
//	defer p.Close()
//
// Readers call cfg.Load().String("theme") and never see a half-loaded
// configuration.
//
// # Errors
//
// A topic whose data is not a JSON object (an array, a string, a number, a
// boolean, or null when [Options.NullAsEmpty] is false) makes reads fail with
// an error wrapping [ErrNotObject]. While watching, such a snapshot is not
// applied: the callback receives the error and reads keep returning the last
// object, until a later write brings an object again. Other errors the
// consumer reports (a failed pull, a malformed invalidation) reach the callback
// too, except the reports of retries still scheduled.
//
// # Caveats
//
// koanf's Provider interface has no context: reads and the start of Watch are
// bounded by [Options.Timeout] and by Close. The callback runs on the
// consumer's goroutine; calls never overlap. It must not call
// [Provider.Close], which waits for it.
package koanfsync

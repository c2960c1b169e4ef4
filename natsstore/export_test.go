package natsstore

// Probes returns how many of its feed's probes s passed.
func Probes(s *Store) uint64 { return s.probes.Load() }

// Mute makes the feed of s drop what its consumer delivers (on), as a
// consumer that went silent on a connection that still answers pings.
func Mute(s *Store, on bool) { s.mute.Store(on) }

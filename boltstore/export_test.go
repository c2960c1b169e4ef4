package boltstore

// GroupStats returns the number of transactions the committer of s made
// and the number of writes they held, for the benchmarks.
func GroupStats(s *Store) (commits, writes uint64) {
	return s.commits.Load(), s.committed.Load()
}

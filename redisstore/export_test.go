package redisstore

// FeedConns returns how many connections s's change feed client has made.
func FeedConns(s *Store) uint64 { return s.feedConns.Load() }

// CountFeedConn counts one more connection of s's change feed client, as
// its pool's redial of a connection that died while idle would.
func CountFeedConn(s *Store) { s.feedConns.Add(1) }

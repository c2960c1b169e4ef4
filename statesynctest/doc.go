// Package statesynctest is the conformance kit of statesync: test suites
// that every store, transport and provider must pass, a chaos transport
// that injects the faults of a real network, and a checker of the
// revisions each consumer applied. It is meant for tests, like
// testing/fstest, and imports package testing.
//
// # Suites
//
// A backend's own tests call the suite of each interface it implements:
//
//   - [TestStore] checks the [statesync.Store] contract: revisions,
//     compare-and-set, data copies, List, Watch, concurrent writers.
//   - [TestSharedStore] checks, through two handles on one storage, that a
//     store shared by several processes shows each one the other's writes.
//   - [TestSharedStoreFaults] checks, through a [SharedStoreRig], that such
//     a store recovers from a cut or silent change feed and from the loss
//     of its history without a [statesync.Source] on it missing a change.
//   - [TestSubscriber] and [TestProvider] check the two halves of a
//     transport; [TestTransport] checks that consumers built on a whole
//     transport converge.
//
// Each suite takes a function that makes a fresh instance per subtest and
// registers its cleanup:
//
//	func TestStore(t *testing.T) {
//		statesynctest.TestStore(t, func(t *testing.T) statesync.Store {
//			s := mystore.Open(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suites write only to topics named for the run (a base name and a
// random suffix), so backends that need a server may share one between
// runs. By convention such backends skip their suite unless an environment
// variable names the server (for example STATESYNC_TEST_POSTGRES_URL), and say
// so in their README. The suites wait for asynchronous deliveries up to
// 10 s; they use real time and must not run inside a testing/synctest
// bubble.
//
// # Chaos
//
// [NewChaos] wraps a Subscriber and a Provider and drops, duplicates,
// reorders, delays and corrupts invalidations, and fails or stalls snapshot
// calls, with probabilities set in [ChaosOptions]. Faults are a function
// of a seed and of the event, so a failure can be replayed: the seed is
// logged, and the environment variable STATESYNC_CHAOS_SEED overrides it.
// [Chaos.Quiesce] stops the faults and delivers what was held back; after
// it a single invalidation (or Refresh) must bring every consumer to the
// latest revision. Use the Chaos inside a testing/synctest
// bubble so that delays and stalls take no real time.
//
// # History
//
// [NewHistory] wraps each consumer's applier and records the revisions it
// applied. [History.Check] fails the test if a consumer applied a revision
// that is not newer than the one before within an epoch or
// applied twice at once; [History.WaitConverged] waits until
// every consumer has applied a revision.
package statesynctest

package main

// A Suite is one group of seeded tests: the tests of one package that
// -test.run selects, run with the run's seed in every seed variable, as
// the -test.shuffle seed and, if Rapid is set, as -rapid.seed.
type Suite struct {
	Name    string   // short name, for -suites and the report
	Pkg     string   // package path relative to the module root, "./httpsync"
	Run     string   // -test.run pattern
	SeedEnv []string // environment variables set to the run's seed
	Rapid   bool     // the package uses pgregory.net/rapid: pass -rapid.seed
	Args    []string // further test flags, "-test." form
}

// Seed variables read by the tests.
const (
	chaosSeedEnv = "STATESYNC_CHAOS_SEED" // statesynctest.Chaos, and the e2e harness through it
	crashSeedEnv = "STATESYNC_CRASH_SEED" // internal/crashtest: the kill points of the crash tests
)

// defaultSuites are the property and chaos suites of the module, in the
// order runs are dealt to them.
func defaultSuites() []Suite {
	return []Suite{
		{
			// The engine's tests in testing/synctest bubbles: lifecycle,
			// coalescing, concurrency, throttle and retry, shuffled.
			Name: "engine", Pkg: ".", Run: "^(TestEngine|TestThrottle|TestRetry)",
		},
		{
			// The end-to-end harness: the rapid property (random writes,
			// drops, reorders, restarts with new epochs, windows stopped
			// and started) and the chaos scenarios.
			Name: "e2e", Pkg: "./internal/e2e", Run: "^(TestPropertyConvergence|TestE2E|TestHarness)",
			SeedEnv: []string{chaosSeedEnv}, Rapid: true,
		},
		{
			// The conformance kit's fault injector and 20 consumers
			// converging through it.
			Name: "conformance", Pkg: "./statesynctest", Run: "^(TestChaos)",
			SeedEnv: []string{chaosSeedEnv},
		},
		{
			// The HTTP client over loopback: consumers under chaos, and a
			// client that reconnects after its server restarts.
			Name: "httpsync", Pkg: "./httpsync", Run: "^(TestChaosOverHTTP|TestClientReconnectsAfterRestart)$",
			SeedEnv: []string{chaosSeedEnv},
		},
		{
			// Persistence across processes: two real processes sharing a
			// file cache and a socket bus.
			Name: "procsync", Pkg: "./persist/procsync", Run: "^TestCrossProcess",
		},
		{
			// Persistence crash tests (a child killed at a seeded point)
			// and the compression round-trip properties.
			Name: "persist", Pkg: "./persist", Run: "^(TestFileStorageCrash|TestCompressionRoundTripProperty)$",
			SeedEnv: []string{crashSeedEnv}, Rapid: true,
		},
	}
}

//go:build gremlins

package natsstore_test

// Mutation testing (gremlins unleash --tags gremlins) runs the package's
// tests once per mutant: it leaves out the two slowest tests, whose code
// paths the fault rig's tests also run, with shorter waits.
func init() { quick = true }

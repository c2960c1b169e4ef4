package procsync_test

import "os"

// childJobs are the jobs a re-executed test binary can run, by the value
// of the environment variable childEnv: "name arg".
var childJobs = map[string]func(arg string) int{
	"xproc": xprocChild,
}

const childEnv = "PROCSYNC_TEST_CHILD"

// runChild runs the child job named by childEnv, if any.
func runChild() (int, bool) {
	v := os.Getenv(childEnv)
	if v == "" {
		return 0, false
	}
	for name, job := range childJobs {
		if len(v) > len(name) && v[:len(name)] == name && v[len(name)] == ' ' {
			return job(v[len(name)+1:]), true
		}
	}
	os.Stderr.WriteString("unknown child job " + v + "\n")
	return 2, true
}

package persist

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A MigrationStep turns data of schema version v into data of version v+1.
// It works on raw JSON, because old schemas are no longer Go types of the
// program; see [TypedStep] for a typed form (a map[string]any works as
// both types). A
// panic in a step is recovered into an error.
type MigrationStep func(data json.RawMessage) (json.RawMessage, error)

// TypedStep makes a MigrationStep of a function from the old schema's Go
// type to the new one's: the data is decoded into From, and the result
// encoded as JSON.
func TypedStep[From, To any](fn func(From) (To, error)) MigrationStep {
	return func(data json.RawMessage) (json.RawMessage, error) {
		var in From
		if err := json.Unmarshal(data, &in); err != nil {
			return nil, fmt.Errorf("decode %T: %w", in, err)
		}
		out, err := fn(in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	}
}

// Migrations is a checked chain of schema migrations up to a current
// version, with an optional validator of the result. Make one with
// [NewMigrations], which checks the chain, so a Migrations value never has
// a gap between its lowest step and its
// current version. A Migrations is immutable and safe for
// concurrent use.
type Migrations struct {
	current  int
	steps    map[int]MigrationStep
	validate func(json.RawMessage) error
}

// NewMigrations returns the Migrations with the given current version,
// steps (keyed by the version they migrate from: step v maps v to v+1)
// and validator, which may be nil. It returns an
// error wrapping [ErrInvalidMigrations] if current < 1, a step is keyed
// below 1 or at or above current, or a step is missing between the lowest
// one and current.
func NewMigrations(current int, steps map[int]MigrationStep, validate func(json.RawMessage) error) (*Migrations, error) {
	if current < 1 {
		return nil, fmt.Errorf("%w: current version %d (want 1 or more)", ErrInvalidMigrations, current)
	}
	m := &Migrations{current: current, steps: maps.Clone(steps), validate: validate}
	if m.steps == nil {
		m.steps = map[int]MigrationStep{}
	}
	keys := slices.Sorted(maps.Keys(m.steps))
	for _, v := range keys {
		switch {
		case m.steps[v] == nil:
			return nil, fmt.Errorf("%w: nil step from version %d", ErrInvalidMigrations, v)
		case v < 1:
			return nil, fmt.Errorf("%w: step from version %d (want 1 or more)", ErrInvalidMigrations, v)
		case v >= current:
			return nil, fmt.Errorf("%w: step from version %d is not below the current version %d", ErrInvalidMigrations, v, current)
		}
	}
	if len(keys) > 0 {
		for v := keys[0]; v < current; v++ {
			if m.steps[v] == nil {
				return nil, fmt.Errorf("%w: missing step from version %d to %d (steps: %s)", ErrInvalidMigrations, v, v+1, listVersions(keys))
			}
		}
	}
	return m, nil
}

// Current returns the current schema version.
func (m *Migrations) Current() int { return m.current }

// migrationResult says what migrate did.
type migrationResult struct {
	// Data is the migrated data; nil on failure.
	Data json.RawMessage
	// FromVersion and ToVersion are the data's version and the current
	// one.
	FromVersion, ToVersion int
	// Steps is the number of steps run.
	Steps int
}

// migrate brings data of schema version from up to the current version:
// it checks first that every step of the path exists (no step runs
// otherwise), then runs them in order, then runs the validator if there is
// one, also when no step was needed. It returns an
// error wrapping [ErrFutureVersion] if from is above the current version,
// [ErrMissingMigration] if a step is missing,
// [ErrMigration] and the step's error if a step fails, or
// [ErrValidation] if the validator rejects the result. On
// error, the result holds no data.
func (m *Migrations) migrate(data json.RawMessage, from int) (migrationResult, error) {
	res := migrationResult{FromVersion: from, ToVersion: m.current}
	if from > m.current {
		return res, fmt.Errorf("%w: cannot migrate from future version %d to %d; the data may be from a newer program", ErrFutureVersion, from, m.current)
	}
	path := migrationPath(from, m.current)
	for _, v := range path {
		if m.steps[v] == nil {
			return res, fmt.Errorf("%w: missing migration from version %d to %d (available: %s)", ErrMissingMigration, v, v+1, listVersions(slices.Sorted(maps.Keys(m.steps))))
		}
	}
	cur := data
	for _, v := range path {
		next, err := runStep(m.steps[v], cur)
		if err != nil {
			return res, fmt.Errorf("%w from version %d to %d: %w", ErrMigration, v, v+1, err)
		}
		if !json.Valid(next) {
			return res, fmt.Errorf("%w from version %d to %d: step returned invalid JSON", ErrMigration, v, v+1)
		}
		cur = next
		res.Steps++
	}
	if m.validate != nil {
		if err := runValidator(m.validate, cur); err != nil {
			if len(path) == 0 {
				return res, fmt.Errorf("%w for current version data: %w", ErrValidation, err)
			}
			return res, fmt.Errorf("%w: migrated data failed validation: %w", ErrValidation, err)
		}
	}
	res.Data = cur
	return res, nil
}

func runStep(step MigrationStep, data json.RawMessage) (out json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("panic: %v", r)
			}
		}
	}()
	return step(data)
}

func runValidator(fn func(json.RawMessage) error, data json.RawMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("validator panic: %v", r)
		}
	}()
	return fn(data)
}

// migrationPath returns the versions whose steps take data from version
// from to version to: [from, …, to−1], empty if from ≥ to.
func migrationPath(from, to int) []int {
	if from >= to {
		return []int{}
	}
	p := make([]int, 0, to-from)
	for v := from; v < to; v++ {
		p = append(p, v)
	}
	return p
}

func listVersions(vs []int) string {
	if len(vs) == 0 {
		return "none"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}

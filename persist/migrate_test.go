package persist_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/statesync-go/statesync/persist"
)

type settingsV1 struct {
	Count int `json:"count"`
}

type settingsV2 struct {
	Count int    `json:"count"`
	Name  string `json:"name"`
}

// v3Migrations migrates {count} (v1) → +name "default" (v2) → +enabled
// true (v3): a typed step, then a map step.
func v3Migrations(t testing.TB) *persist.Migrations {
	t.Helper()
	m, err := persist.NewMigrations(3, map[int]persist.MigrationStep{
		1: persist.TypedStep(func(in settingsV1) (settingsV2, error) {
			return settingsV2{Count: in.Count, Name: "default"}, nil
		}),
		2: persist.TypedStep(func(m map[string]any) (map[string]any, error) {
			m["enabled"] = true
			return m, nil
		}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// B-MIG-01, B-MIG-02, B-MIG-03, B-MIG-07: steps keyed by source version
// run in order from the data's version.
func TestMigrate(t *testing.T) {
	m := v3Migrations(t)
	tests := []struct {
		data  string
		from  int
		want  string
		steps int
	}{
		{`{"count":42}`, 1, `{"count":42,"enabled":true,"name":"default"}`, 2},
		{`{"count":10,"name":"test"}`, 2, `{"count":10,"enabled":true,"name":"test"}`, 1},
		{`{"count":1,"name":"x","enabled":false}`, 3, `{"count":1,"name":"x","enabled":false}`, 0},
	}
	for _, tt := range tests {
		res, err := m.Migrate(json.RawMessage(tt.data), tt.from)
		if err != nil || string(res.Data) != tt.want || res.FromVersion != tt.from || res.ToVersion != 3 || res.Steps != tt.steps {
			t.Errorf("Migrate(%s, %d) = %+v, %v; want %s after %d steps, %d→3", tt.data, tt.from, res, err, tt.want, tt.steps, tt.from)
		}
	}
}

// B-MIG-04, B-MIG-08: the validator runs after the chain, and at the
// current version too.
func TestMigrateValidator(t *testing.T) {
	valid := func(d json.RawMessage) error {
		if !strings.Contains(string(d), `"enabled":true`) {
			return errors.New("enabled missing")
		}
		return nil
	}
	m, err := persist.NewMigrations(2, map[int]persist.MigrationStep{1: persist.TypedStep(func(m map[string]any) (map[string]any, error) {
		m["enabled"] = true
		return m, nil
	})}, valid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(json.RawMessage(`{}`), 1); err != nil {
		t.Errorf("Migrate() passing the validator = %v; want nil", err)
	}
	res, err := m.Migrate(json.RawMessage(`{"enabled":false}`), 2)
	if !errors.Is(err, persist.ErrValidation) || !strings.Contains(err.Error(), "current version data") || res.Data != nil {
		t.Errorf("Migrate() of current data failing the validator = %+v, %v; want ErrValidation for current version data", res, err)
	}
	strict, _ := persist.NewMigrations(2, map[int]persist.MigrationStep{1: func(d json.RawMessage) (json.RawMessage, error) { return d, nil }}, valid)
	if _, err := strict.Migrate(json.RawMessage(`{}`), 1); !errors.Is(err, persist.ErrValidation) || !strings.Contains(err.Error(), "migrated data failed validation") {
		t.Errorf("Migrate() whose result fails the validator = %v; want ErrValidation: migrated data failed validation", err)
	}
}

// B-MIG-05, B-MIG-06, B-MIG-15: a future version and a missing step are
// clear errors, found before any step runs.
func TestMigrateVersionErrors(t *testing.T) {
	ran := 0
	step := func(d json.RawMessage) (json.RawMessage, error) { ran++; return d, nil }
	m, err := persist.NewMigrations(4, map[int]persist.MigrationStep{2: step, 3: step}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(json.RawMessage(`{}`), 5); !errors.Is(err, persist.ErrFutureVersion) || !strings.Contains(err.Error(), "future version 5 to 4") {
		t.Errorf("Migrate(from 5, current 4) = %v; want ErrFutureVersion", err)
	}
	_, err = m.Migrate(json.RawMessage(`{}`), 1)
	if !errors.Is(err, persist.ErrMissingMigration) || !strings.Contains(err.Error(), "from version 1 to 2 (available: 2, 3)") {
		t.Errorf("Migrate(from 1) without step 1 = %v; want ErrMissingMigration naming 1→2 and the steps", err)
	}
	if ran != 0 {
		t.Errorf("%d steps ran before the missing step was found; want 0", ran)
	}
}

// B-MIG-09, B-MIG-10: a failing or panicking step fails the migration with
// its own error and no partial data.
func TestMigrateStepFailure(t *testing.T) {
	stepErr := errors.New("Migration failed")
	tests := map[string]persist.MigrationStep{
		"error":       func(json.RawMessage) (json.RawMessage, error) { return nil, stepErr },
		"panic error": func(json.RawMessage) (json.RawMessage, error) { panic(stepErr) },
		"panic value": func(json.RawMessage) (json.RawMessage, error) { panic("boom") },
		"bad JSON":    func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`{`), nil },
	}
	for name, bad := range tests {
		m, err := persist.NewMigrations(3, map[int]persist.MigrationStep{1: persist.TypedStep(func(m map[string]any) (map[string]any, error) { return m, nil }), 2: bad}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Migrate(json.RawMessage(`{}`), 1)
		if !errors.Is(err, persist.ErrMigration) || res.Data != nil {
			t.Errorf("%s: Migrate() = %+v, %v; want ErrMigration and no data", name, res, err)
		}
		if strings.HasPrefix(name, "panic") || name == "error" {
			if !strings.Contains(err.Error(), "Migration failed") && !strings.Contains(err.Error(), "boom") {
				t.Errorf("%s: Migrate() = %v; want the step's message", name, err)
			}
		}
	}
}

// B-MIG-11, B-MIG-12, B-MIG-15: NewMigrations keeps its steps and
// validator (which may be nil) and checks the chain.
func TestNewMigrations(t *testing.T) {
	step := func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`"migrated"`), nil }
	m, err := persist.NewMigrations(2, map[int]persist.MigrationStep{1: step}, func(json.RawMessage) error { return nil })
	if err != nil || m.Current() != 2 {
		t.Fatalf("NewMigrations(2, {1}, validator) = %v, %v; want current 2", m, err)
	}
	if res, _ := m.Migrate(json.RawMessage(`{}`), 1); string(res.Data) != `"migrated"` {
		t.Errorf("Migrate() = %s; want the step's result", res.Data)
	}
	if simple, err := persist.NewMigrations(2, map[int]persist.MigrationStep{1: step}, nil); err != nil || simple.Current() != 2 {
		t.Errorf("NewMigrations(2, {1}, nil) = %v, %v; want current 2 and no validator", simple, err)
	}
	bad := []struct {
		current int
		steps   []int
	}{
		{0, nil},      // version < 1
		{3, []int{0}}, // step below 1
		{3, []int{1}}, // gap: step 2 missing
		{3, []int{1, 2, 3}},
	}
	for _, b := range bad {
		steps := map[int]persist.MigrationStep{}
		for _, v := range b.steps {
			steps[v] = step
		}
		if _, err := persist.NewMigrations(b.current, steps, nil); !errors.Is(err, persist.ErrInvalidMigrations) {
			t.Errorf("NewMigrations(%d) with steps %v = %v; want ErrInvalidMigrations", b.current, b.steps, err)
		}
	}
}

// B-MIG-13, B-MIG-14: the path of steps from a version to another.
func TestMigrationPath(t *testing.T) {
	for _, tt := range []struct {
		f, to int
		want  []int
	}{{1, 4, []int{1, 2, 3}}, {3, 3, []int{}}, {5, 3, []int{}}} {
		if got := persist.MigrationPath(tt.f, tt.to); !slices.Equal(got, tt.want) || got == nil {
			t.Errorf("MigrationPath(%d, %d) = %v; want %v", tt.f, tt.to, got, tt.want)
		}
	}
}

package persist

import "encoding/json"

// Test-only access to unexported helpers.

// MigrationResult is migrate's result.
type MigrationResult = migrationResult

// Migrate runs m's steps from version from.
func (m *Migrations) Migrate(data json.RawMessage, from int) (MigrationResult, error) {
	return m.migrate(data, from)
}

// MigrationPath is migrationPath.
func MigrationPath(from, to int) []int { return migrationPath(from, to) }

// FileName is fileName.
var FileName = fileName

package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/statesync-go/statesync"
)

// SchemaVersion is the version of the tables this package creates, recorded
// in the schema's schema_migrations table.
const SchemaVersion = 1

// ErrUnsupportedSchema is returned by [Open] when the schema was migrated by
// a newer version of this package, to a version this one does not know.
var ErrUnsupportedSchema = errors.New("pgstore: unsupported schema version")

// names holds the quoted SQL names of one schema's objects.
type names struct {
	schema     string // unquoted, validated
	qSchema    string // quoted
	topics     string // quoted, schema-qualified
	meta       string
	migrations string
	channel    string // the NOTIFY channel, unquoted
}

func newNames(schema string) names {
	q := func(n string) string { return pgx.Identifier{schema, n}.Sanitize() }
	return names{
		schema:     schema,
		qSchema:    pgx.Identifier{schema}.Sanitize(),
		topics:     q("topics"),
		meta:       q("meta"),
		migrations: q("schema_migrations"),
		channel:    channelName(schema),
	}
}

// channelName returns the NOTIFY channel of a schema: "statesync_" and the
// schema name, or a hash of it when that would pass PostgreSQL's 63-byte
// identifier limit. Channels are per database, so two schemas of one
// database never hear each other.
func channelName(schema string) string {
	if c := "statesync_" + schema; len(c) <= 63 {
		return c
	}
	h := sha256.Sum256([]byte(schema))
	return "statesync_h" + hex.EncodeToString(h[:16])
}

// migrationLockKey is the pg_advisory_xact_lock key that serialises the
// migrations of one schema across processes.
func migrationLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("statesync-migrate:" + schema))
	return int64(h.Sum64())
}

// steps()[i] brings a schema from version i to i+1. Each runs in the
// migration transaction, under the advisory lock.
func (n names) steps() []string {
	r := strings.NewReplacer("{schema}", n.qSchema, "{topics}", n.topics, "{meta}", n.meta,
		"{channel}", "'"+n.channel+"'") // channel is [a-z0-9_]: a safe literal
	return []string{r.Replace(`
CREATE TABLE {meta} (
	singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	id         text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {topics} (
	topic      text COLLATE "C" PRIMARY KEY,
	revision   bigint NOT NULL CHECK (revision > 0),
	data       bytea NOT NULL,
	source_id  text NOT NULL DEFAULT '',
	updated_at timestamptz NOT NULL
);
CREATE FUNCTION {schema}.lost_history() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
			RETURN NULL;
		END IF;
	END IF;
	UPDATE {meta} SET id = gen_random_uuid()::text, created_at = now();
	PERFORM pg_notify({channel}, 'e');
	RETURN NULL;
END
$f$;
CREATE TRIGGER lost_history_truncate AFTER TRUNCATE ON {topics}
	FOR EACH STATEMENT EXECUTE FUNCTION {schema}.lost_history();
CREATE TRIGGER lost_history_delete AFTER DELETE ON {topics}
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION {schema}.lost_history();
`)}
}

// migrate creates the schema or brings it to [SchemaVersion], and makes
// sure the meta row exists, in one transaction holding an advisory lock, so
// that daemons starting together migrate once.
func migrate(ctx context.Context, conn *pgx.Conn, n names) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey(n.schema)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+n.qSchema); err != nil {
		return fmt.Errorf("creating schema %s: %w", n.qSchema, err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+n.migrations+
		" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return err
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+n.migrations).Scan(&version); err != nil {
		return err
	}
	steps := n.steps()
	if version > len(steps) {
		return fmt.Errorf("%w: schema %s is at version %d; this package knows up to %d", ErrUnsupportedSchema, n.schema, version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if _, err := tx.Exec(ctx, steps[v]); err != nil {
			return fmt.Errorf("migrating schema %s to version %d: %w", n.schema, v+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+n.migrations+" (version) VALUES ($1)", v+1); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+n.meta+" (id) VALUES ($1) ON CONFLICT DO NOTHING", statesync.NewEpoch()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

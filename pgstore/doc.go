// Package pgstore is a [statesync.Store] in PostgreSQL, on pgx v5, shared by
// every statesync daemon that opens the same database and schema.
package pgstore

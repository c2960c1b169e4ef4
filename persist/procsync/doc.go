// Package procsync carries a [persist.Persister]'s saves between the
// processes of one host that share its storage (a cache directory, a bbolt
// file), so that each applies the others' newer snapshots without asking
// the source.
//
// # Model
//
// A [Peer] joins a channel of a [Bus] for one Persister ([Join]). After
// each save it sends a small notice with the revision and epoch, never the
// data; the other Peers of the channel call [persist.Persister.Reload],
// which reads the shared storage, runs every load check and applies the
// record only if it passes the revision and epoch gate. A [SocketBus]
// sends each notice as one Unix datagram to every process whose socket is
// in a shared directory: no server, no polling. A [MemoryBus] does the
// same within one process.
//
// Messages are hints: they may be lost, and a receiver always reads the
// storage. The wire form of a notice is
//
//	{"type":"snapshot","tabId":"<sender id>","payload":{"revision":"42","epoch":"k7Qx"}}
//
// with the types "snapshot", "request-sync" and "clear".
package procsync

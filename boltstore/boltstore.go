package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statesync-go/statesync"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors. Each is matched with [errors.Is]; the errors returned by
// this package wrap them with detail (the path, the topic, the cause).
var (
	// ErrLocked is returned by [Open] when another process (or another
	// Store of this process) holds the database file and does not release
	// it within [Options.Timeout].
	ErrLocked = errors.New("boltstore: database is locked by another process")
	// ErrNotDatabase is returned by [Open] when the file is not a bbolt
	// database, or is a bbolt database that does not belong to this
	// package (its buckets are someone else's).
	ErrNotDatabase = errors.New("boltstore: not a statesync bolt database")
	// ErrUnsupportedFormat is returned by [Open] when the file was written
	// by a newer version of this package, in a format this one cannot read.
	ErrUnsupportedFormat = errors.New("boltstore: unsupported format version")
	// ErrCorruptRecord is returned when a stored topic record cannot be
	// decoded: it is truncated, has an unknown version or fails its
	// checksum. Records of other topics are not affected.
	ErrCorruptRecord = errors.New("boltstore: corrupt record")
	// ErrTooLarge is returned by [Store.Write] when the data is larger than
	// [Options.MaxDataSize]; nothing is written.
	ErrTooLarge = errors.New("boltstore: data too large")
)

// DefaultTimeout is the default of [Options.Timeout].
const DefaultTimeout = time.Second

// DefaultMaxDataSize is the default of [Options.MaxDataSize]: 16 MiB.
const DefaultMaxDataSize = 16 << 20

// FormatVersion is the version of the file layout written by this package,
// stored in the meta bucket under the key "format".
const FormatVersion = 1

// Options configures a [Store]. The zero value (or a nil *Options) gives
// the defaults.
type Options struct {
	// Timeout bounds the wait for the file lock that keeps a database to one
	// process at a time. 0 means [DefaultTimeout]; a negative value means
	// wait forever. When it expires, [Open] returns an error wrapping
	// [ErrLocked].
	Timeout time.Duration
	// NoSync skips the fsync at each commit. It is UNSAFE: an operating
	// system crash or power loss can then lose acknowledged writes or
	// corrupt the file. It is meant for tests and benchmarks only. (A crash
	// of the process alone loses nothing either way.)
	NoSync bool
	// MaxDataSize is the largest Write.Data accepted, in bytes; a larger
	// write fails with [ErrTooLarge] and writes nothing. 0 means
	// [DefaultMaxDataSize]; a negative value means bbolt's own limit of
	// about 2 GiB.
	MaxDataSize int
	// FileMode is the permission of a database file created by [Open].
	// 0 means 0600.
	FileMode os.FileMode
}

// Bucket and key names. A file holds exactly these two root buckets.
var (
	metaBucket   = []byte("statesync.meta")
	topicsBucket = []byte("statesync.topics")
	formatKey    = []byte("format")
	epochKey     = []byte("epoch")
	openedKey    = []byte("opened")
)

// A Store is a durable [statesync.Store] in a bbolt file. Make one with
// [Open] and release it with [Store.Close]. All methods are safe for
// concurrent use.
//
// Each topic is one key of a bucket; its revision, data, source id and
// commit time are written in a bbolt transaction, which is fsynced before
// Write returns. Concurrent writes share transactions (group commit, see
// the package documentation); reads run concurrently with them.
type Store struct {
	db      *bolt.DB
	path    string
	epoch   string
	maxData int

	closed atomic.Bool

	writesMu sync.Mutex    // protects writes and idle
	writes   int           // Writes in progress, from their start to the last watcher call
	idle     chan struct{} // made by Close if writes > 0, closed when they end

	queue     chan *pendingWrite // to the committer; closed by Close once no Write is in progress
	committer sync.WaitGroup     // the committer goroutine, started by Open, ended by Close

	// beforeCommit, if set (by whitebox tests, before the first Write), is
	// called by the committer with each group before it commits it.
	beforeCommit func(writes []*pendingWrite)

	commits, committed atomic.Uint64 // transactions of the committer, and the writes they held

	feed statesync.Feed // the watchers
}

// Group limits: a group holds at most maxGroupWrites writes and, unless it
// is a single write, at most maxGroupBytes of data, so that one large
// group does not hold back the writes queued behind it for long.
const (
	maxGroupWrites = 1024
	maxGroupBytes  = 4 << 20
	queueSize      = 1024
	maxLinger      = time.Millisecond
)

// A pendingWrite is a Write handed to the committer. The committer sets
// rec, buf and err, then closes done; the caller then reads them.
type pendingWrite struct {
	w    statesync.Write
	key  []byte
	data []byte // w.Data, or "null"
	done chan struct{}

	grp *group           // the group that held the write
	rec statesync.Record // the committed record, without data
	buf []byte           // the stored value, read-only once committed
	err error            // why the write failed; the others of its group are not affected
}

// A group is the writes committed in one transaction, in commit order.
// Its first write's caller reports the committed records of all of them to
// the watchers, in that order, then closes published; the other callers
// wait for it, so that each Write still returns after its watchers ran.
type group struct {
	writes    []*pendingWrite
	published chan struct{}
}

var _ statesync.Store = (*Store)(nil)
var _ statesync.PrefixLister = (*Store)(nil)

// Open opens the database file at path, creating it if it does not exist
// (its directory must exist), and takes a new random epoch for this run of
// the store (see the package documentation). Only one Store may have a file
// open at a time, in any process: Open waits up to [Options.Timeout] for
// the file lock, then fails with [ErrLocked]. A file that is not one of
// this package's databases fails with [ErrNotDatabase].
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case o.Timeout == 0:
		o.Timeout = DefaultTimeout
	case o.Timeout < 0:
		o.Timeout = 0 // bbolt: wait forever
	}
	switch {
	case o.MaxDataSize == 0:
		o.MaxDataSize = DefaultMaxDataSize
	case o.MaxDataSize < 0 || o.MaxDataSize > maxDataLimit:
		o.MaxDataSize = maxDataLimit
	}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}

	db, err := bolt.Open(path, o.FileMode, &bolt.Options{Timeout: o.Timeout, NoSync: o.NoSync})
	if err != nil {
		var pe *os.PathError
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, o.Timeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
			errors.Is(err, berrors.ErrChecksum), !errors.As(err, &pe) && !hasBoltMagic(path):
			// bbolt reports files that are not databases in several ways
			// (for a short file, "file size too small"); a file without
			// bbolt's magic number is not one, whatever the error says.
			return nil, fmt.Errorf("%w: %s: %w", ErrNotDatabase, path, err)
		case errors.As(err, &pe):
			return nil, fmt.Errorf("boltstore: %w", err) // the PathError names the path
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, epoch: statesync.NewEpoch(), maxData: o.MaxDataSize, queue: make(chan *pendingWrite, queueSize)}
	if err := db.Update(s.setUp); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s.committer.Go(s.commitLoop)
	return s, nil
}

// maxDataLimit leaves room under bbolt's value limit for a record's header.
const maxDataLimit = bolt.MaxValueSize - 1024

// hasBoltMagic reports whether the file at path starts with a bbolt meta
// page: a 16-byte page header, then the magic number 0xED0CDAED (in the
// byte order of the machine that wrote it).
func hasBoltMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [20]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	const magic = 0xED0CDAED
	return binary.LittleEndian.Uint32(b[16:]) == magic || binary.BigEndian.Uint32(b[16:]) == magic
}

// setUp checks the layout of the file, creating it in an empty one, and
// records the new epoch.
func (s *Store) setUp(tx *bolt.Tx) error {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		var foreign []string
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = append(foreign, string(name))
			return nil
		}); err != nil {
			return err
		}
		if len(foreign) > 0 {
			return fmt.Errorf("%w: it holds buckets %q", ErrNotDatabase, foreign)
		}
		var err error
		if meta, err = tx.CreateBucket(metaBucket); err != nil {
			return err
		}
		if err := meta.Put(formatKey, []byte(fmt.Sprint(FormatVersion))); err != nil {
			return err
		}
	}
	switch f := string(meta.Get(formatKey)); f {
	case fmt.Sprint(FormatVersion):
	case "":
		return fmt.Errorf("%w: no format version in bucket %q", ErrNotDatabase, metaBucket)
	default:
		return fmt.Errorf("%w: the file has format %q, this package reads %d", ErrUnsupportedFormat, f, FormatVersion)
	}
	if _, err := tx.CreateBucketIfNotExists(topicsBucket); err != nil {
		return err
	}
	if err := meta.Put(epochKey, []byte(s.epoch)); err != nil {
		return err
	}
	return meta.Put(openedKey, time.Now().UTC().AppendFormat(nil, time.RFC3339Nano))
}

// Epoch returns the epoch of this run of the store, also stored in the
// file's meta bucket under the key "epoch".
func (s *Store) Epoch() string { return s.epoch }

// Path returns the path of the database file.
func (s *Store) Path() string { return s.path }

// Close releases the file. It waits for the operations in progress,
// including the watcher calls of Writes that committed; after it returns,
// no watcher is called again, and the store's methods return
// [statesync.ErrClosed]. It must not be called from a Watch callback. It is
// idempotent.
func (s *Store) Close() error {
	s.writesMu.Lock()
	if s.closed.Swap(true) {
		s.writesMu.Unlock()
		return nil
	}
	var idle chan struct{}
	if s.writes > 0 {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.writesMu.Unlock()
	if idle != nil {
		<-idle
	}
	// No Write is in progress and none can start: nothing sends on queue.
	close(s.queue)
	s.committer.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close %s: %w", s.path, err)
	}
	return nil
}

// closedErr turns bbolt's error for a closed database into
// [statesync.ErrClosed], for calls that raced with Close.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return statesync.ErrClosed
	}
	return err
}

// Get implements [statesync.Store]. A topic never written has revision 0,
// data "null" and the store's epoch.
func (s *Store) Get(ctx context.Context, topic string) (statesync.Record, error) {
	if s.closed.Load() {
		return statesync.Record{}, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return statesync.Record{}, err
	}
	rec := statesync.Record{Topic: topic, Epoch: s.epoch, Data: null()}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(topicsBucket).Get([]byte(topic))
		if v == nil {
			return nil
		}
		return decodeRecord(&rec, v, true)
	})
	if err != nil {
		return statesync.Record{}, fmt.Errorf("boltstore: get %q: %w", topic, closedErr(err))
	}
	return rec, nil
}

// Write implements [statesync.Store]. The topic must be valid
// ([statesync.CheckTopic]) and the data at most [Options.MaxDataSize]
// bytes; nil or JSON null data is stored as "null". The data is stored as
// given (a [statesync.Source] checks it is JSON). The revision is the
// topic's last plus one, 1 for its first write; the condition of a
// conditional write is checked in the same transaction as the write,
// against the topic's revision at that point of the transaction (which
// may hold earlier writes of the same topic). Concurrent writes share
// transactions; a write whose condition fails, or that fails otherwise,
// is left out of its transaction without affecting the others. Write
// returns once the transaction is committed (and fsynced unless
// [Options.NoSync]), after the watchers were called with the records of
// that transaction, in commit order. ctx is checked before the write
// starts; a write waiting for its transaction cannot be cancelled.
func (s *Store) Write(ctx context.Context, w statesync.Write) (statesync.Record, error) {
	if !s.beginWrite() {
		return statesync.Record{}, statesync.ErrClosed
	}
	defer s.endWrite()
	if err := ctx.Err(); err != nil {
		return statesync.Record{}, err
	}
	if err := statesync.CheckTopic(w.Topic); err != nil {
		return statesync.Record{}, fmt.Errorf("boltstore: write: %w", err)
	}
	if len(w.Data) > s.maxData {
		return statesync.Record{}, fmt.Errorf("%w: topic %q: %d bytes, limit %d", ErrTooLarge, w.Topic, len(w.Data), s.maxData)
	}
	data := w.Data
	if data == nil || isNull(data) {
		data = null()
	}
	pw := &pendingWrite{w: w, key: []byte(w.Topic), data: data, done: make(chan struct{})}
	s.queue <- pw // Close does not close queue while this Write is in progress
	<-pw.done

	g := pw.grp
	if g.writes[0] == pw {
		s.publish(g)
	} else {
		<-g.published
	}
	if pw.err != nil {
		var ce *statesync.ConflictError
		if errors.As(pw.err, &ce) {
			return statesync.Record{}, ce
		}
		return statesync.Record{}, fmt.Errorf("boltstore: write %q: %w", w.Topic, closedErr(pw.err))
	}
	return pw.record(), nil
}

// publish reports the committed records of g to the watchers, in commit
// order, then releases the other callers of the group, even if a watcher
// panics.
func (s *Store) publish(g *group) {
	defer close(g.published)
	for _, pw := range g.writes {
		if pw.err == nil {
			s.feed.Publish(pw.record())
		}
	}
}

// record returns the committed record of pw, whose data is in pw.buf: the
// buffer is never written again, so the record, its watchers and the
// caller share it, read-only.
func (pw *pendingWrite) record() statesync.Record {
	rec := pw.rec
	n := len(pw.buf)
	rec.Data = pw.buf[n-len(pw.data)-crcSize : n-crcSize : n-crcSize]
	return rec
}

// commitLoop is the committer: it takes the writes queued (within the
// group limits), commits them in one transaction and wakes their callers,
// until Close closes the queue. Groups form from the writes that queue
// while the previous transaction commits; and when fewer writes are
// queued than were in progress at the end of the last commit, the
// committer lingers a little for the others (their writers, woken by the
// last commit, are usually about to write again), at most half the last
// commit's duration and maxLinger. A lone writer's write is therefore
// committed at once, never held back.
func (s *Store) commitLoop() {
	var (
		carry  *pendingWrite // taken from the queue, too big for the last group
		expect int           // writes in progress at the end of the last commit
		linger time.Duration // how long to wait for them
		timer  = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-s.queue; !ok {
				return
			}
		}
		g := &group{writes: []*pendingWrite{first}, published: make(chan struct{})}
		size := len(first.data)
		var wait <-chan time.Time // the linger timer, once started
		lingered := false
	fill:
		for len(g.writes) < maxGroupWrites {
			var pw *pendingWrite
			var ok bool
			select {
			case pw, ok = <-s.queue:
			default:
				if len(g.writes) >= expect || lingered {
					break fill
				}
				if wait == nil {
					timer.Reset(linger)
					wait = timer.C
				}
				select {
				case pw, ok = <-s.queue:
				case <-wait:
					lingered, wait = true, nil
					continue
				}
			}
			if !ok {
				break // Close waits for every queued write, so none is lost
			}
			if size+len(pw.data) > maxGroupBytes {
				carry = pw
				break
			}
			size += len(pw.data)
			g.writes = append(g.writes, pw)
		}
		if wait != nil {
			timer.Stop()
		}
		if s.beforeCommit != nil {
			s.beforeCommit(g.writes)
		}
		start := time.Now()
		s.commit(g)
		linger = min(time.Since(start)/2, maxLinger)
		// The writes in progress now (this group's, and those queued or
		// about to be) are the writers likely to write again soon: the
		// next group waits a little for that many. Counting the last
		// group's writes instead would settle, with writers that take a
		// while to come back (over HTTP), into two groups of half the
		// writers taking turns.
		s.writesMu.Lock()
		expect = s.writes
		s.writesMu.Unlock()
		s.commits.Add(1)
		s.committed.Add(uint64(len(g.writes)))
		for _, pw := range g.writes {
			pw.grp = g
			close(pw.done)
		}
	}
}

// commit writes the group's writes in one transaction, in order, setting
// each one's record or error. A write that fails (its condition, a corrupt
// record, a revision overflow) puts nothing and the others go on; if the
// transaction fails to commit, every write of the group fails with it.
func (s *Store) commit(g *group) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(topicsBucket)
		for _, pw := range g.writes {
			pw.rec, pw.buf, pw.err = s.put(b, pw)
		}
		return nil
	})
	if err != nil {
		for _, pw := range g.writes {
			pw.rec, pw.buf, pw.err = statesync.Record{}, nil, err
		}
	}
}

// put writes one write of a group into b, which holds the group's earlier
// writes: the condition compares with the revision they left.
func (s *Store) put(b *bolt.Bucket, pw *pendingWrite) (statesync.Record, []byte, error) {
	w := pw.w
	var cur statesync.Record
	if v := b.Get(pw.key); v != nil {
		// Only the header is needed; a corrupt body is overwritten.
		if err := decodeRecord(&cur, v, false); err != nil {
			return statesync.Record{}, nil, err
		}
	}
	if w.Conditional && w.IfRevision != cur.Revision {
		return statesync.Record{}, nil, &statesync.ConflictError{Topic: w.Topic, Expected: w.IfRevision, Current: cur.Revision, Epoch: s.epoch}
	}
	next, err := cur.Revision.Next()
	if err != nil {
		return statesync.Record{}, nil, err
	}
	now := commitTime(time.Now()) // under the writer lock: times follow revisions
	buf := appendRecord(make([]byte, 0, recordOverhead+len(w.SourceID)+len(pw.data)), next, now, w.SourceID, pw.data)
	// Put checks its arguments before it changes anything: a failed Put
	// leaves the bucket as it was.
	if err := b.Put(pw.key, buf); err != nil {
		return statesync.Record{}, nil, err
	}
	return statesync.Record{Topic: w.Topic, Revision: next, Epoch: s.epoch, SourceID: w.SourceID, Time: now}, buf, nil
}

// beginWrite counts a Write in progress, unless the store is closed.
func (s *Store) beginWrite() bool {
	s.writesMu.Lock()
	defer s.writesMu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.writes++
	return true
}

// endWrite ends what beginWrite began, and wakes Close after the last one.
func (s *Store) endWrite() {
	s.writesMu.Lock()
	defer s.writesMu.Unlock()
	s.writes--
	if s.writes == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// List implements [statesync.Store]: every written topic (including
// deleted ones, whose data is null) with its revision, epoch, source id and
// time, sorted by topic, without data. It checks the structure of each
// record but not its checksum, which only [Store.Get] verifies.
func (s *Store) List(ctx context.Context) ([]statesync.Record, error) {
	return s.ListPrefix(ctx, "") // bbolt keeps keys in byte order, which is topic order
}

// ListPrefix implements [statesync.PrefixLister]: the written topics
// starting with prefix, as [Store.List] returns them, read from their key
// range only.
func (s *Store) ListPrefix(ctx context.Context, prefix string) ([]statesync.Record, error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []statesync.Record
	p := []byte(prefix)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(topicsBucket).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			rec := statesync.Record{Topic: string(k), Epoch: s.epoch}
			if err := decodeRecord(&rec, v, false); err != nil {
				return fmt.Errorf("topic %q: %w", k, err)
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		if prefix == "" {
			return nil, fmt.Errorf("boltstore: list: %w", closedErr(err))
		}
		return nil, fmt.Errorf("boltstore: list %q: %w", prefix, closedErr(err))
	}
	return out, nil
}

// Watch implements [statesync.Store]. The store is meant for one process,
// so the feed carries the writes of this Store only. fn is called
// synchronously by Write with the full record, after the commit and
// outside bbolt's locks, so it may read and write the store; it must not
// block. stop waits for calls of fn in progress, so it must not be called
// from fn; after it returns, fn is not called again. stop is idempotent.
func (s *Store) Watch(ctx context.Context, fn func(statesync.Record)) (func(), error) {
	if s.closed.Load() {
		return nil, statesync.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.feed.Watch(fn), nil
}

func null() []byte { return []byte("null") }

func isNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

// commitTime drops t's monotonic reading and keeps what the file keeps
// (nanoseconds since the Unix epoch), so that a record read back equals the
// one Write returned.
func commitTime(t time.Time) time.Time { return time.Unix(0, t.UnixNano()) }

// The record format, version 1. All integers are unsigned varints except
// the time, a signed varint, and the checksum:
//
//	version   1 byte, recordVersion
//	revision  uvarint
//	time      varint, nanoseconds since the Unix epoch; 0 = unknown
//	sourceID  uvarint length, then the bytes
//	data      the rest up to the checksum: the JSON, never empty
//	crc       4 bytes, big-endian CRC-32C (Castagnoli) of everything before
//
// The data comes last so that it is read in place, without a length.
const recordVersion = 1

const (
	crcSize        = 4
	recordOverhead = 1 + binary.MaxVarintLen64*3 + crcSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendRecord(b []byte, rev statesync.Revision, t time.Time, sourceID string, data []byte) []byte {
	start := len(b)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(rev))
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	b = binary.AppendUvarint(b, uint64(len(sourceID)))
	b = append(b, sourceID...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeRecord fills the revision, source id and time of rec from the
// stored value v and, if withData, checks the checksum and sets rec.Data to
// a copy of the data (v belongs to bbolt and dies with the transaction).
// It never panics, whatever v holds.
func decodeRecord(rec *statesync.Record, v []byte, withData bool) error {
	corrupt := func(what string) error {
		return fmt.Errorf("%w: %s (%d bytes)", ErrCorruptRecord, what, len(v))
	}
	if len(v) < 1+crcSize {
		return corrupt("too short")
	}
	if v[0] != recordVersion {
		return corrupt(fmt.Sprintf("unknown record version %d", v[0]))
	}
	body := v[:len(v)-crcSize]
	p := body[1:]
	rev, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("bad revision")
	}
	p = p[n:]
	ns, n := binary.Varint(p)
	if n <= 0 {
		return corrupt("bad time")
	}
	p = p[n:]
	idLen, n := binary.Uvarint(p)
	if n <= 0 || idLen > uint64(len(p)-n) {
		return corrupt("bad source id")
	}
	p = p[n:]
	sourceID := p[:idLen]
	data := p[idLen:]
	if len(data) == 0 {
		return corrupt("no data")
	}
	if withData {
		if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(v[len(body):]); got != want {
			return corrupt(fmt.Sprintf("checksum %08x, want %08x", got, want))
		}
		rec.Data = bytes.Clone(data)
	}
	rec.Revision = statesync.Revision(rev)
	rec.SourceID = string(sourceID)
	rec.Time = time.Time{}
	if ns != 0 {
		rec.Time = time.Unix(0, ns)
	}
	return nil
}

package persisttest

import (
	"context"
	"sync"

	"github.com/statesync-go/statesync/persist"
)

// SharedMemory hands out [persist.MemoryStorage]s by key: the same key gives the
// same storage, different keys are isolated. It is safe for
// concurrent use.
type SharedMemory struct {
	opts persist.MemoryOptions
	mu   sync.Mutex // protects m
	m    map[string]*persist.MemoryStorage
}

// NewSharedMemory returns a SharedMemory whose storages are made with
// opts.
func NewSharedMemory(opts *persist.MemoryOptions) *SharedMemory {
	s := &SharedMemory{m: map[string]*persist.MemoryStorage{}}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

// Storage returns the storage of key.
func (s *SharedMemory) Storage(key string) *persist.MemoryStorage {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.m[key]
	if !ok {
		o := s.opts
		m = persist.NewMemoryStorage(&o)
		s.m[key] = m
	}
	return m
}

// ClearAll clears every key.
func (s *SharedMemory) ClearAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.m {
		_ = m.Clear(context.Background())
	}
}

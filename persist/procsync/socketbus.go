package procsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxMessage is the largest message a [SocketBus] carries, channel
// name included.
const MaxMessage = 16 << 10

// maxSocketPath is the longest Unix socket path accepted everywhere
// (sun_path is 104 bytes on macOS and the BSDs, 108 on Linux).
const maxSocketPath = 103

// A SocketBus is a [Bus] between the processes of one host, without a
// server. Each SocketBus binds a Unix datagram socket named
// <random>.sock in a shared directory; Publish delivers the message to
// the subscribers of this process and sends one datagram to every other
// socket of the directory. A socket whose process is gone (the send is
// refused) is removed. The directory is created with mode 0700, so only
// the user's own processes can take part.
//
// Delivery is best-effort, as the Bus contract allows: a datagram to a
// process whose receive buffer is full waits at most until ctx's deadline
// (or one second). Subscribers are called on the SocketBus's reading
// goroutine (or on the publisher's, for this process's own messages).
//
// Unix datagram sockets exist on Linux, macOS and the BSDs; elsewhere
// [OpenSocketBus] fails, and a Persister without a [Peer] works
// without cross-process updates.
type SocketBus struct {
	dir  string
	self string
	conn *net.UnixConn
	f    fanout
	wg   sync.WaitGroup

	mu     sync.Mutex // protects closed
	closed bool
}

var _ Bus = (*SocketBus)(nil)

// OpenSocketBus joins the bus of dir, creating dir if needed.
func OpenSocketBus(dir string) (*SocketBus, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("procsync: socket bus: %w", err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	self := filepath.Join(dir, hex.EncodeToString(id[:])+".sock")
	if len(self) > maxSocketPath {
		return nil, fmt.Errorf("procsync: socket bus: path %q is %d bytes, longer than the %d a Unix socket allows; use a shorter directory", self, len(self), maxSocketPath)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: self, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("procsync: socket bus: %w", err)
	}
	b := &SocketBus{dir: dir, self: self, conn: conn}
	b.wg.Add(1)
	go b.read()
	return b, nil
}

// Dir returns the bus's directory.
func (b *SocketBus) Dir() string { return b.dir }

func (b *SocketBus) read() {
	defer b.wg.Done()
	buf := make([]byte, MaxMessage+1)
	for {
		n, _, err := b.conn.ReadFromUnix(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		channel, msg, ok := bytes.Cut(buf[:n], []byte{'\n'})
		if !ok {
			continue
		}
		b.f.deliver(string(channel), msg)
	}
}

// Publish delivers msg to the subscribers of channel in this process and
// in the other processes of the directory. It returns the first send
// error other than a gone process.
func (b *SocketBus) Publish(ctx context.Context, channel string, msg []byte) error {
	if strings.Contains(channel, "\n") {
		return fmt.Errorf("procsync: socket bus: channel name with a newline")
	}
	frame := make([]byte, 0, len(channel)+1+len(msg))
	frame = append(append(append(frame, channel...), '\n'), msg...)
	if len(frame) > MaxMessage {
		return fmt.Errorf("procsync: socket bus: message of %d bytes, more than %d", len(frame), MaxMessage)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.f.deliver(channel, msg)

	peers, err := filepath.Glob(filepath.Join(b.dir, "*.sock"))
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	var first error
	for _, p := range peers {
		if p == b.self {
			continue
		}
		if err := sendTo(p, frame, deadline); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
				os.Remove(p) // its process is gone
				continue
			}
			if first == nil {
				first = fmt.Errorf("procsync: socket bus: send to %s: %w", filepath.Base(p), err)
			}
		}
	}
	return first
}

func sendTo(path string, frame []byte, deadline time.Time) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err = c.Write(frame)
	return err
}

// Subscribe registers fn for channel.
func (b *SocketBus) Subscribe(channel string, fn func(msg []byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, net.ErrClosed
	}
	return b.f.subscribe(channel, fn), nil
}

// Close leaves the bus: the socket is closed and removed, and the reading
// goroutine has returned when Close returns. It is idempotent.
func (b *SocketBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	err := b.conn.Close()
	os.Remove(b.self)
	b.wg.Wait()
	return err
}

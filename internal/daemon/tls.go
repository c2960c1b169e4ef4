package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of a pair of PEM files through
// tls.Config.GetCertificate and loads it again when either file's
// modification time or size changes (checked at each handshake, at most
// once a second) or when Reload is called (on SIGHUP), so that short-lived
// certificates renewed in place are taken up without a restart. A pair
// that does not load (a renewal half written, a key that does not match)
// leaves the previous certificate in service and is logged; the next
// check tries again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files the certificate was loaded from
	checked time.Time    // last check of the files' stamps
}

// fileStamp tells whether a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// newCertReloader loads the pair once: an error here stops the daemon.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the pair now; on error the previous certificate stays.
func (r *certReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *certReloader) loadLocked() error {
	r.checked = time.Now()
	var stamp [2]fileStamp
	var err error
	for i, name := range []string{r.certFile, r.keyFile} {
		if stamp[i], err = stampOf(name); err != nil {
			return fmt.Errorf("serve: tls: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("serve: tls: loading %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if r.cert != nil {
		r.log.Info("TLS certificate reloaded", slog.String("cert", r.certFile), slog.Time("notAfter", leafNotAfter(&cert)))
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func leafNotAfter(c *tls.Certificate) time.Time {
	if c.Leaf == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter
}

// GetCertificate is the tls.Config hook.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Second {
		r.checked = time.Now()
		changed := false
		for i, name := range []string{r.certFile, r.keyFile} {
			st, err := stampOf(name)
			changed = changed || err != nil || !st.mod.Equal(r.stamp[i].mod) || st.size != r.stamp[i].size
		}
		if changed {
			if err := r.loadLocked(); err != nil {
				r.log.Warn("TLS certificate not reloaded; the previous one stays in service", slog.Any("error", err))
			}
		}
	}
	if r.cert == nil {
		return nil, errors.New("serve: tls: no certificate")
	}
	return r.cert, nil
}

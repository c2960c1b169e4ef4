package natsstore

import "strings"

// Topics are stored under keys of the bucket made by encodeKey: the bytes
// A-Z a-z 0-9 _ - stand for themselves, every other byte (the topic
// characters '.' and ':', and anything else: spaces, '/', '=', non-ASCII
// UTF-8 bytes, invalid UTF-8) is written "=XX", XX its value in upper-case
// hexadecimal. A key is therefore one token of a NATS subject (no '.'),
// made only of characters valid in every key, and the encoding is a
// bijection between strings and the keys decodeKey accepts.

const hexDigits = "0123456789ABCDEF"

// plain reports whether c stands for itself in a key.
func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// encodeKey returns the key of topic. The key of "" is "", which is not a
// valid key: callers treat the empty topic as never written.
func encodeKey(topic string) string {
	n := 0
	for i := 0; i < len(topic); i++ {
		if !plain(topic[i]) {
			n++
		}
	}
	if n == 0 {
		return topic
	}
	var b strings.Builder
	b.Grow(len(topic) + 2*n)
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// decodeKey returns the topic whose key is key, and false if key is not
// one encodeKey makes (a key written by something else than this package):
// empty, a byte that must be escaped, an escape that is not '=' and two
// upper-case hexadecimal digits, or an escaped byte that stands for itself.
func decodeKey(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	if !strings.Contains(key, "=") {
		for i := 0; i < len(key); i++ {
			if !plain(key[i]) {
				return "", false
			}
		}
		return key, true
	}
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case plain(c):
			b.WriteByte(c)
		case c == '=' && i+2 < len(key):
			hi, lo := unhex(key[i+1]), unhex(key[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			d := byte(hi<<4 | lo)
			if plain(d) {
				return "", false // not how encodeKey writes it
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unhex returns the value of an upper-case hexadecimal digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

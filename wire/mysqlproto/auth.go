package mysqlproto

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
)

// The authentication plugins' arithmetic: the scrambles a client answers
// with, the RSA encryption of caching_sha2_password's full
// authentication, and what passthrough authentication reads from a
// stored mysql_native_password hash.

// NewScramble returns 20 random bytes without NUL or '$' (some clients treat
// the nonce as a C string).
func NewScramble() []byte {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	for i := range b {
		b[i] = b[i]&0x7f | 1
		if b[i] == '$' {
			b[i] = '#'
		}
	}
	return b
}

// NativeScramble is mysql_native_password:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
func NativeScramble(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	return NativeScrambleHash(scramble, h1[:])
}

// NativeScrambleHash is NativeScramble from h1 = SHA1(password).
func NativeScrambleHash(scramble, h1 []byte) []byte {
	h2 := sha1.Sum(h1)
	h := sha1.New()
	h.Write(scramble[:min(20, len(scramble))])
	h.Write(h2[:])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// SHA2Scramble is caching_sha2_password's fast path:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func SHA2Scramble(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	m1 := sha256.Sum256([]byte(password))
	m2 := sha256.Sum256(m1[:])
	h := sha256.New()
	h.Write(m2[:])
	h.Write(scramble[:min(20, len(scramble))])
	m3 := h.Sum(nil)
	for i := range m3 {
		m3[i] ^= m1[i]
	}
	return m3
}

// RSAEncryptPasswordKey is (password + NUL) XOR the scramble, RSA-OAEP
// with SHA-1 under pub.
func RSAEncryptPasswordKey(pub *rsa.PublicKey, scramble []byte, password string) ([]byte, error) {
	if len(scramble) == 0 {
		return nil, errors.New("empty scramble")
	}
	plain := append([]byte(password), 0)
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, plain, nil)
}

// NativeHash reads "*" + 40 hex digits, SHA1(SHA1(password)).
func NativeHash(s string) ([]byte, bool) {
	if len(s) != 41 || s[0] != '*' {
		return nil, false
	}
	b, err := hex.DecodeString(s[1:])
	return b, err == nil
}

// RecoverSHA1 checks a mysql_native_password answer against the stored
// SHA1(SHA1(password)) and returns SHA1(password).
func RecoverSHA1(scramble, resp, h2 []byte) ([]byte, bool) {
	if len(resp) != sha1.Size || len(h2) != sha1.Size {
		return nil, false
	}
	h := sha1.New()
	h.Write(scramble[:min(20, len(scramble))])
	h.Write(h2)
	mask := h.Sum(nil)
	h1 := make([]byte, sha1.Size)
	for i := range h1 {
		h1[i] = resp[i] ^ mask[i]
	}
	check := sha1.Sum(h1)
	if subtle.ConstantTimeCompare(check[:], h2) != 1 {
		return nil, false
	}
	return h1, true
}

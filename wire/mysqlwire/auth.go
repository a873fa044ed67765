package mysqlwire

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// newScramble returns 20 random bytes without NUL or '$' (some clients treat
// the nonce as a C string).
func newScramble() []byte {
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

// nativeScramble is mysql_native_password:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
func nativeScramble(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	return nativeScrambleHash(scramble, h1[:])
}

// nativeScrambleHash is nativeScramble from h1 = SHA1(password).
func nativeScrambleHash(scramble, h1 []byte) []byte {
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

// sha2Scramble is caching_sha2_password's fast path:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func sha2Scramble(scramble []byte, password string) []byte {
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

// scrambleFor computes the auth response of plugin for password, which
// may be a passthrough user's SHA1(password) (passthrough.go).
func scrambleFor(plugin string, scramble []byte, password string) ([]byte, error) {
	if h1, ok := passHash(password); ok {
		if plugin != mysqlproto.PluginNative && plugin != "" {
			return nil, mysqlproto.NewSQLError(mysqlproto.CRAuthPluginErr, "HY000",
				"Authentication plugin '%s' reported error: a passthrough user (auth_user) can log in to the servers with mysql_native_password only", plugin)
		}
		return nativeScrambleHash(scramble, h1), nil
	}
	switch plugin {
	case mysqlproto.PluginNative, "":
		return nativeScramble(scramble, password), nil
	case mysqlproto.PluginCachingSHA2:
		return sha2Scramble(scramble, password), nil
	case mysqlproto.PluginClearText:
		return append([]byte(password), 0), nil
	}
	return nil, mysqlproto.NewSQLError(mysqlproto.ERNotSupportedAuth, "08004", "authentication plugin %q is not supported by switchyard", plugin)
}

// verify checks a client's auth response against the plain-text password
// in constant time.
func verify(plugin string, scramble, resp []byte, password string) bool {
	want, err := scrambleFor(plugin, scramble, password)
	if err != nil {
		return false
	}
	if plugin == mysqlproto.PluginClearText {
		resp = []byte(strings.TrimSuffix(string(resp), "\x00"))
		want = []byte(password)
	}
	return len(want) == len(resp) && subtle.ConstantTimeCompare(want, resp) == 1
}

// rsaEncryptPassword encrypts password for caching_sha2_password's full
// authentication over an unencrypted connection to the key the server sent
// (PEM); see rsaEncryptPasswordKey.
func rsaEncryptPassword(pemKey []byte, scramble []byte, password string) ([]byte, error) {
	pub, err := config.ParseRSAPublicKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("server public key %w", err)
	}
	return rsaEncryptPasswordKey(pub, scramble, password)
}

// rsaEncryptPasswordKey is (password + NUL) XOR the scramble, RSA-OAEP
// with SHA-1 under pub.
func rsaEncryptPasswordKey(pub *rsa.PublicKey, scramble []byte, password string) ([]byte, error) {
	if len(scramble) == 0 {
		return nil, errors.New("empty scramble")
	}
	plain := append([]byte(password), 0)
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, plain, nil)
}

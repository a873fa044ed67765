// Package pgauth is PostgreSQL's password methods' arithmetic, apart
// from the protocol that carries it: the credentials a configured password
// gives (SCRAM-SHA-256 stored keys, the md5 verifier), a verifier read as
// pg_authid keeps it, the ClientKey a client's SCRAM proof reveals, and
// a SCRAM client that answers with that ClientKey instead of a password
// (passthrough authentication, as PgBouncer's SCRAM pass-through). The
// messages that carry them are package pgwire's; like mysqlproto's
// auth.go for MySQL, this holds no connection and no session.
package pgauth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/xdg-go/scram"

	"github.com/switchyard/switchyard/config"
)

// Credentials is what the proxy needs to check one user's password: SCRAM
// stored keys, and the md5 verifier when the password allows it.
type Credentials struct {
	SCRAM    scram.StoredCredentials
	HasSCRAM bool
	MD5      string // "md5" + hex; empty when unknown (SCRAM verifier configured)
}

// CredCache memoizes derived Credentials: deriving SCRAM keys from a plain
// password costs 4096 PBKDF2 rounds, which must not happen per login.
type CredCache struct {
	mu sync.Mutex
	m  map[string]*Credentials // key: user name + "\x00" + password
}

// Get returns the credentials of u, derived once per name and password.
func (c *CredCache) Get(u *config.User) (*Credentials, error) {
	key := u.Name + "\x00" + u.Password
	c.mu.Lock()
	defer c.mu.Unlock()
	if cr, ok := c.m[key]; ok {
		return cr, nil
	}
	cr, err := DeriveCredentials(u.Name, u.Password)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = make(map[string]*Credentials)
	}
	c.m[key] = cr
	return cr, nil
}

// DeriveCredentials reads a configured password: a SCRAM or md5 verifier
// as it is, a plain-text one into both (SCRAM with a fresh salt).
func DeriveCredentials(user, password string) (*Credentials, error) {
	switch {
	case strings.HasPrefix(password, "SCRAM-SHA-256$"):
		sc, err := ParseSCRAMVerifier(password)
		if err != nil {
			return nil, err
		}
		return &Credentials{SCRAM: sc, HasSCRAM: true}, nil
	case IsMD5Verifier(password):
		return &Credentials{MD5: password}, nil
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	client, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return nil, fmt.Errorf("preparing SCRAM Credentials: %w", err)
	}
	sc, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 4096})
	if err != nil {
		return nil, err
	}
	sum := md5.Sum([]byte(password + user))
	return &Credentials{SCRAM: sc, HasSCRAM: true, MD5: "md5" + hex.EncodeToString(sum[:])}, nil
}

// IsMD5Verifier says whether s is "md5" + 32 hex digits.
func IsMD5Verifier(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	_, err := hex.DecodeString(s[3:])
	return err == nil
}

// ParseSCRAMVerifier reads PostgreSQL's rolpassword form:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64 parts.
func ParseSCRAMVerifier(v string) (scram.StoredCredentials, error) {
	bad := errors.New("malformed SCRAM-SHA-256 verifier")
	parts := strings.Split(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
	if len(parts) != 2 {
		return scram.StoredCredentials{}, bad
	}
	is := strings.SplitN(parts[0], ":", 2)
	ks := strings.SplitN(parts[1], ":", 2)
	if len(is) != 2 || len(ks) != 2 {
		return scram.StoredCredentials{}, bad
	}
	iters, err := strconv.Atoi(is[0])
	if err != nil || iters <= 0 {
		return scram.StoredCredentials{}, bad
	}
	salt, err1 := base64.StdEncoding.DecodeString(is[1])
	stored, err2 := base64.StdEncoding.DecodeString(ks[0])
	server, err3 := base64.StdEncoding.DecodeString(ks[1])
	if err1 != nil || err2 != nil || err3 != nil {
		return scram.StoredCredentials{}, bad
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: iters},
		StoredKey:  stored, ServerKey: server,
	}, nil
}

// SCRAMKeys are a SCRAM-SHA-256 verifier and the ClientKey a client proved.
type SCRAMKeys struct {
	Salt                            string
	Iters                           int
	ClientKey, StoredKey, ServerKey []byte
}

// RecoverClientKey returns the ClientKey a client proved in a SCRAM
// exchange against stored (StoredKey), or nil.
func RecoverClientKey(storedKey []byte, clientFirst, serverFirst, clientFinal string) []byte {
	// client-first-message = gs2-header client-first-message-bare, the
	// header being flag "," [authzid] ",".
	i := strings.IndexByte(clientFirst, ',')
	if i < 0 {
		return nil
	}
	j := strings.IndexByte(clientFirst[i+1:], ',')
	if j < 0 {
		return nil
	}
	bare := clientFirst[i+1+j+1:]
	k := strings.LastIndex(clientFinal, ",p=")
	if k < 0 {
		return nil
	}
	proof, err := base64.StdEncoding.DecodeString(clientFinal[k+3:])
	if err != nil {
		return nil
	}
	sig := hmacSHA256(storedKey, bare+","+serverFirst+","+clientFinal[:k])
	if len(proof) != len(sig) {
		return nil
	}
	key := make([]byte, len(sig))
	for n := range key {
		key[n] = proof[n] ^ sig[n]
	}
	h := sha256.Sum256(key)
	if subtle.ConstantTimeCompare(h[:], storedKey) != 1 {
		return nil
	}
	return key
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// SCRAMClient is the client side of SCRAM-SHA-256 with a ClientKey
// instead of a password.
type SCRAMClient struct {
	keys    *SCRAMKeys
	nonce   string
	bare    string
	authMsg string
}

// NewSCRAMClient starts an exchange with keys.
func NewSCRAMClient(k *SCRAMKeys) *SCRAMClient {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	c := &SCRAMClient{keys: k, nonce: base64.RawStdEncoding.EncodeToString(b)}
	c.bare = "n=,r=" + c.nonce
	return c
}

// First is the client-first-message.
func (c *SCRAMClient) First() string { return "n,," + c.bare }

// Final is the client-final-message answering serverFirst, with the
// proof the ClientKey gives; an error when the server's verifier is not
// the one the keys come from.
func (c *SCRAMClient) Final(serverFirst string) (string, error) {
	var nonce, salt string
	iters := 0
	for _, attr := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(attr, "r="):
			nonce = attr[2:]
		case strings.HasPrefix(attr, "s="):
			s, err := base64.StdEncoding.DecodeString(attr[2:])
			if err != nil {
				return "", errors.New("malformed salt")
			}
			salt = string(s)
		case strings.HasPrefix(attr, "i="):
			iters, _ = strconv.Atoi(attr[2:])
		}
	}
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", errors.New("the server's nonce does not extend ours")
	}
	if salt != c.keys.Salt || iters != c.keys.Iters {
		return "", errors.New("the server's verifier differs from the one auth_query returned (salt or iterations); clients must log in again after a password change")
	}
	withoutProof := "c=biws,r=" + nonce
	c.authMsg = c.bare + "," + serverFirst + "," + withoutProof
	sig := hmacSHA256(c.keys.StoredKey, c.authMsg)
	proof := make([]byte, len(sig))
	for i := range proof {
		proof[i] = c.keys.ClientKey[i] ^ sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// Verify checks the server-final-message's signature.
func (c *SCRAMClient) Verify(serverFinal string) bool {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok || c.authMsg == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return false
	}
	return hmac.Equal(got, hmacSHA256(c.keys.ServerKey, c.authMsg))
}

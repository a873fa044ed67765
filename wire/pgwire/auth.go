package pgwire

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
)

// credentials is what the proxy needs to check one user's password: SCRAM
// stored keys, and the md5 verifier when the password allows it.
type credentials struct {
	scram    scram.StoredCredentials
	hasSCRAM bool
	md5      string // "md5" + hex; empty when unknown (SCRAM verifier configured)
}

// credCache memoizes derived credentials: deriving SCRAM keys from a plain
// password costs 4096 PBKDF2 rounds, which must not happen per login.
type credCache struct {
	mu sync.Mutex
	m  map[string]*credentials // key: user name + "\x00" + password
}

func (c *credCache) get(u *config.User) (*credentials, error) {
	key := u.Name + "\x00" + u.Password
	c.mu.Lock()
	defer c.mu.Unlock()
	if cr, ok := c.m[key]; ok {
		return cr, nil
	}
	cr, err := deriveCredentials(u.Name, u.Password)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = make(map[string]*credentials)
	}
	c.m[key] = cr
	return cr, nil
}

func deriveCredentials(user, password string) (*credentials, error) {
	switch {
	case strings.HasPrefix(password, "SCRAM-SHA-256$"):
		sc, err := parseSCRAMVerifier(password)
		if err != nil {
			return nil, err
		}
		return &credentials{scram: sc, hasSCRAM: true}, nil
	case isMD5Verifier(password):
		return &credentials{md5: password}, nil
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	client, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return nil, fmt.Errorf("preparing SCRAM credentials: %w", err)
	}
	sc, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 4096})
	if err != nil {
		return nil, err
	}
	sum := md5.Sum([]byte(password + user))
	return &credentials{scram: sc, hasSCRAM: true, md5: "md5" + hex.EncodeToString(sum[:])}, nil
}

func isMD5Verifier(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	_, err := hex.DecodeString(s[3:])
	return err == nil
}

// parseSCRAMVerifier reads PostgreSQL's rolpassword form:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64 parts.
func parseSCRAMVerifier(v string) (scram.StoredCredentials, error) {
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

// authFailed is what every failed password check looks like to the client,
// whether the user exists or not, as PostgreSQL does.
func authFailed(user string) *pgError {
	return newFatal(codeInvalidPassword, "password authentication failed for user %q", user)
}

// authenticate runs the password exchange the user's auth method calls for.
// u is nil for an unknown user: the exchange still runs against throwaway
// credentials so that the answer does not reveal which user names exist.
func (c *clientConn) authenticate(u *config.User, name string) error {
	method := "scram-sha-256"
	var cr *credentials
	if u != nil {
		if u.Auth != "" {
			method = u.Auth
		}
		var err error
		if cr, err = c.srv.creds.get(u); err != nil {
			return newFatal(codeInternalError, "credentials of user %q: %v", name, err)
		}
	}
	return c.checkPassword(method, cr, name)
}

// checkPassword runs the password exchange of method against cr (nil: an
// unknown user, which fails as a wrong password would).
func (c *clientConn) checkPassword(method string, cr *credentials, name string) error {
	switch method {
	case "trust":
		return nil
	case "md5":
		return c.authMD5(cr, name)
	default:
		return c.authSCRAM(cr, name)
	}
}

func (c *clientConn) authMD5(cr *credentials, user string) error {
	var salt [4]byte
	_, _ = rand.Read(salt[:])
	if err := c.send(&pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return err
	}
	body, err := c.readAuthMessage()
	if err != nil {
		return err
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(body); err != nil {
		return newFatal(codeProtocolViolation, "invalid password message: %v", err)
	}
	if cr == nil || cr.md5 == "" {
		return authFailed(user)
	}
	sum := md5.Sum(append([]byte(cr.md5[3:]), salt[:]...))
	want := "md5" + hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(pm.Password)) != 1 {
		return authFailed(user)
	}
	return nil
}

func (c *clientConn) authSCRAM(cr *credentials, user string) error {
	stored := scram.StoredCredentials{}
	known := cr != nil && cr.hasSCRAM
	if known {
		stored = cr.scram
	} else {
		// Unknown user or md5-only credentials: run a full exchange that
		// cannot succeed, so timing and messages match a real failure.
		junk := make([]byte, 32)
		_, _ = rand.Read(junk)
		stored = scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(junk[:16]), Iters: 4096}, StoredKey: junk, ServerKey: junk}
	}
	server, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return stored, nil })
	if err != nil {
		return newFatal(codeInternalError, "SCRAM: %v", err)
	}
	conv := server.NewConversation()
	if err := c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}}); err != nil {
		return err
	}
	body, err := c.readAuthMessage()
	if err != nil {
		return err
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(body); err != nil {
		return newFatal(codeProtocolViolation, "invalid SASL initial response: %v", err)
	}
	if first.AuthMechanism != "SCRAM-SHA-256" {
		return newFatal(codeProtocolViolation, "client selected an invalid SASL authentication mechanism")
	}
	clientFirst := string(first.Data) // first.Data is the reader's buffer, reused by the next read
	out, err := conv.Step(clientFirst)
	if err != nil {
		return newFatal(codeProtocolViolation, "malformed SCRAM message: %v", err)
	}
	if err := c.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(out)}); err != nil {
		return err
	}
	body, err = c.readAuthMessage()
	if err != nil {
		return err
	}
	var final pgproto3.SASLResponse
	if err := final.Decode(body); err != nil {
		return newFatal(codeProtocolViolation, "invalid SASL response: %v", err)
	}
	serverFirst := out
	out, err = conv.Step(string(final.Data))
	if err != nil || !conv.Valid() || !known {
		return authFailed(user)
	}
	if c.wantClientKey {
		// What the client proved is its ClientKey: passthrough users log
		// in to the servers with it (passthrough.go).
		c.clientKey = recoverClientKey(stored.StoredKey, clientFirst, serverFirst, string(final.Data))
	}
	return c.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(out)})
}

// maxAuthMsg caps a password or SASL message, read before the client is
// authenticated: PostgreSQL's own cap for SASL messages
// (PG_MAX_SASL_MESSAGE_LENGTH). A SCRAM message is a few hundred bytes,
// an md5 response 40; the proxy asks for no cleartext password. A longer
// one is refused from its header, before its body is read.
const maxAuthMsg = 1024

// readAuthMessage reads one 'p' message (password, SASL) during login.
func (c *clientConn) readAuthMessage() ([]byte, error) {
	if typ, total, ok := c.rd.PeekHeaderWait(); ok && total-5 > maxAuthMsg {
		metrics.LimitRefusals.WithLabelValues("postgres", "auth_message").Inc()
		return nil, newFatal(codeProtocolViolation, "invalid message length %d for message type %q during authentication (limit %d)", total-5, typ, maxAuthMsg)
	}
	typ, raw, err := c.rd.Next()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, newFatal(codeProtocolViolation, "expected password response, got message type %q", typ)
	}
	return raw[5:], nil
}

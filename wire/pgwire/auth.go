package pgwire

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/wire/pgauth"
)

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
	var cr *pgauth.Credentials
	if u != nil {
		if u.Auth != "" {
			method = u.Auth
		}
		var err error
		if cr, err = c.srv.creds.Get(u); err != nil {
			return newFatal(codeInternalError, "credentials of user %q: %v", name, err)
		}
	}
	return c.checkPassword(method, cr, name)
}

// checkPassword runs the password exchange of method against cr (nil: an
// unknown user, which fails as a wrong password would).
func (c *clientConn) checkPassword(method string, cr *pgauth.Credentials, name string) error {
	switch method {
	case "trust":
		return nil
	case "md5":
		return c.authMD5(cr, name)
	default:
		return c.authSCRAM(cr, name)
	}
}

func (c *clientConn) authMD5(cr *pgauth.Credentials, user string) error {
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
	if cr == nil || cr.MD5 == "" {
		return authFailed(user)
	}
	sum := md5.Sum(append([]byte(cr.MD5[3:]), salt[:]...))
	want := "md5" + hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(pm.Password)) != 1 {
		return authFailed(user)
	}
	return nil
}

func (c *clientConn) authSCRAM(cr *pgauth.Credentials, user string) error {
	stored := scram.StoredCredentials{}
	known := cr != nil && cr.HasSCRAM
	if known {
		stored = cr.SCRAM
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
	// Over TLS the proxy offers channel binding as PostgreSQL does
	// (SCRAM-SHA-256-PLUS, tls-server-end-point: a hash of the proxy's
	// certificate goes into the proof), so that clients with
	// channel_binding=require log in, and those that prefer it (libpq's
	// and pgx's default) use it.
	mechs := []string{"SCRAM-SHA-256"}
	conv := server.NewConversation()
	if c.tlsCert != nil {
		if cb, err := scram.NewTLSServerEndpointBinding(c.tlsCert); err == nil {
			conv = server.NewConversationWithChannelBinding(cb)
			mechs = []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}
		}
	}
	if err := c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: mechs}); err != nil {
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
	if !slices.Contains(mechs, first.AuthMechanism) {
		return newFatal(codeProtocolViolation, "client selected an invalid SASL authentication mechanism")
	}
	clientFirst := string(first.Data) // first.Data is the reader's buffer, reused by the next read
	// As PostgreSQL: the -PLUS mechanism goes with channel binding data
	// (gs2 flag "p"), and only it.
	if (first.AuthMechanism == "SCRAM-SHA-256-PLUS") != strings.HasPrefix(clientFirst, "p=") {
		return newFatal(codeProtocolViolation, "channel binding data (gs2 flag \"p\") goes with SCRAM-SHA-256-PLUS, and only with it")
	}
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
		c.clientKey = pgauth.RecoverClientKey(stored.StoredKey, clientFirst, serverFirst, string(final.Data))
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

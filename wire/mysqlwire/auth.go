package mysqlwire

import (
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/wire/mysqlproto"
)

// scrambleFor computes the auth response of plugin for password, which
// may be a passthrough user's SHA1(password) (passthrough.go).
func scrambleFor(plugin string, scramble []byte, password string) ([]byte, error) {
	if h1, ok := passHash(password); ok {
		if plugin != mysqlproto.PluginNative && plugin != "" {
			return nil, mysqlproto.NewSQLError(mysqlproto.CRAuthPluginErr, "HY000",
				"Authentication plugin '%s' reported error: a passthrough user (auth_user) can log in to the servers with mysql_native_password only", plugin)
		}
		return mysqlproto.NativeScrambleHash(scramble, h1), nil
	}
	switch plugin {
	case mysqlproto.PluginNative, "":
		return mysqlproto.NativeScramble(scramble, password), nil
	case mysqlproto.PluginCachingSHA2:
		return mysqlproto.SHA2Scramble(scramble, password), nil
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
// (PEM); see mysqlproto.RSAEncryptPasswordKey.
func rsaEncryptPassword(pemKey []byte, scramble []byte, password string) ([]byte, error) {
	pub, err := config.ParseRSAPublicKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("server public key %w", err)
	}
	return mysqlproto.RSAEncryptPasswordKey(pub, scramble, password)
}

package mysqlwire

import (
	"testing"

	"github.com/switchyard/switchyard/wire/mysqlproto"
)

func TestAuthScrambles(t *testing.T) {
	s := []byte("01234567890123456789")
	if !verify(mysqlproto.PluginCachingSHA2, s, mysqlproto.SHA2Scramble(s, "secret"), "secret") {
		t.Fatal("sha2")
	}
	if verify(mysqlproto.PluginCachingSHA2, s, mysqlproto.SHA2Scramble(s, "secret"), "other") {
		t.Fatal("sha2 wrong password accepted")
	}
	if !verify(mysqlproto.PluginNative, s, nil, "") || verify(mysqlproto.PluginNative, s, nil, "x") {
		t.Fatal("empty password")
	}
}

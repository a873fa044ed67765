package config

import (
	"io"
	"os"
	"strings"
	"unicode"
)

// Secrets.
//
// Every key that holds a secret (users' password and server_password,
// clusters' monitor_password, proxy.admin_token, auth_password) takes
// either the value itself or one reference, the whole value:
//
//	password = "${APP_PASSWORD}"              # an environment variable
//	password = "${file:/run/secrets/app_pw}"  # a file's content
//
// A file's content loses one trailing newline ("\n" or "\r\n"), as
// `echo pw > file` writes it; a relative path is taken from the config
// file's folder. Files are read at every (re)load, so a rotated secret
// takes effect with a reload. Only secret keys are expanded: a `$` in an
// address or a database name stays what it is. A reference that cannot be
// resolved is a config error that names the variable or file, never the
// value; `switchyard check` lists every such problem.

// maxSecretFile caps a secret file: a password is short, and a path that
// names a large file by mistake should not be read whole into memory.
const maxSecretFile = 64 << 10

// secretRef says whether s is a reference, and returns what it names.
func secretRef(s string) (ref string, ok bool) {
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") || len(s) < 4 {
		return "", false
	}
	return s[2 : len(s)-1], true
}

// secret reads a secret key: a string, expanded when it is a reference.
// ok is false when the key is absent, of the wrong type or unresolvable
// (the last two reported).
func (l *loader) secret(v any, key string) (string, bool) {
	s, ok := l.str(v, key)
	if !ok {
		return "", false
	}
	ref, isRef := secretRef(s)
	if !isRef {
		return s, true
	}
	if path, isFile := strings.CutPrefix(ref, "file:"); isFile {
		if path == "" {
			l.errorf(key, "${file:} names no file")
			return "", false
		}
		path = l.resolve(path)
		if !l.regularFile(path, key) {
			return "", false
		}
		f, err := os.Open(path)
		if err != nil {
			l.errorf(key, "secret file: %v", err)
			return "", false
		}
		defer f.Close()
		buf, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		if err != nil {
			l.errorf(key, "secret file: %v", err)
			return "", false
		}
		n := len(buf)
		if n > maxSecretFile {
			l.errorf(key, "secret file %s is larger than %d bytes", path, maxSecretFile)
			return "", false
		}
		val := strings.TrimSuffix(strings.TrimSuffix(string(buf[:n]), "\n"), "\r")
		if val == "" {
			l.errorf(key, "secret file %s is empty", path)
			return "", false
		}
		return val, true
	}
	if !validEnvName(ref) {
		// Not printed: it may be a password that only looks like one.
		l.errorf(key, "is written ${...} but is not a secret reference: write ${NAME} for an environment variable or ${file:PATH} for a file")
		return "", false
	}
	val, set := l.lookupEnv(ref)
	if !set {
		l.errorf(key, "environment variable %s is not set", ref)
		return "", false
	}
	if val == "" {
		l.errorf(key, "environment variable %s is empty", ref)
		return "", false
	}
	return val, true
}

func (l *loader) lookupEnv(name string) (string, bool) {
	if l.getenv != nil {
		return l.getenv(name)
	}
	return os.LookupEnv(name)
}

// validEnvName accepts the names a shell exports: letters, digits and
// underscores, not starting with a digit.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r < unicode.MaxASCII && unicode.IsLetter(r):
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

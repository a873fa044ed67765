package config

import "testing"

// ServerCreds: the credentials toward the servers default to the user's
// name and plain-text password, never to a verifier.
func TestServerCreds(t *testing.T) {
	for _, c := range []struct {
		u        User
		user, pw string
	}{
		{User{Name: "a", Password: "pw"}, "a", "pw"},
		{User{Name: "a", Password: "pw", ServerUser: "b", ServerPassword: "spw"}, "b", "spw"},
		{User{Name: "a", Password: "SCRAM-SHA-256$4096:abc$x:y"}, "a", ""},
		{User{Name: "a", Password: "md5" + "0123456789abcdef0123456789abcdef"}, "a", ""},
	} {
		if user, pw := c.u.ServerCreds(); user != c.user || pw != c.pw {
			t.Errorf("%+v: %q %q, want %q %q", c.u, user, pw, c.user, c.pw)
		}
	}
}

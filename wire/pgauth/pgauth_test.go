package pgauth

import (
	"testing"

	"github.com/xdg-go/scram"
)

// TestSCRAMKeyPassthrough: the ClientKey recovered from a client's
// exchange logs in to a SCRAM server holding the same verifier, and a
// wrong proof yields no key.
func TestSCRAMKeyPassthrough(t *testing.T) {
	client, err := scram.SHA256.NewClient("", "s3cret pw", "")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "0123456789abcdef", Iters: 4096})
	if err != nil {
		t.Fatal(err)
	}
	newServer := func() *scram.ServerConversation {
		srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return stored, nil })
		if err != nil {
			t.Fatal(err)
		}
		return srv.NewConversation()
	}

	// A client logs in to the proxy.
	cc, sc := client.NewConversation(), newServer()
	clientFirst, _ := cc.Step("")
	serverFirst, err := sc.Step(clientFirst)
	if err != nil {
		t.Fatal(err)
	}
	clientFinal, err := cc.Step(serverFirst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Step(clientFinal); err != nil || !sc.Valid() {
		t.Fatalf("client exchange: %v", err)
	}
	key := RecoverClientKey(stored.StoredKey, clientFirst, serverFirst, clientFinal)
	if key == nil {
		t.Fatal("no ClientKey recovered from a valid exchange")
	}
	bad := []byte(clientFinal)
	bad[len(bad)-5] ^= 1
	if RecoverClientKey(stored.StoredKey, clientFirst, serverFirst, string(bad)) != nil {
		t.Error("a ClientKey from a tampered proof")
	}

	// The proxy logs in to a server with it.
	keys := &SCRAMKeys{Salt: stored.Salt, Iters: stored.Iters, ClientKey: key, StoredKey: stored.StoredKey, ServerKey: stored.ServerKey}
	pc, sc := NewSCRAMClient(keys), newServer()
	serverFirst, err = sc.Step(pc.First())
	if err != nil {
		t.Fatal(err)
	}
	final, err := pc.Final(serverFirst)
	if err != nil {
		t.Fatal(err)
	}
	serverFinal, err := sc.Step(final)
	if err != nil || !sc.Valid() {
		t.Fatalf("the server refused the proxy's proof: %v", err)
	}
	if !pc.Verify(serverFinal) {
		t.Error("the server's signature did not verify")
	}
	if pc.Verify("v=AAAA") {
		t.Error("a wrong server signature verified")
	}

	// Another verifier of the same password (new salt) is refused before
	// anything is sent.
	other, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "fedcba9876543210", Iters: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv2, _ := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return other, nil })
	pc, sc = NewSCRAMClient(keys), srv2.NewConversation()
	serverFirst, _ = sc.Step(pc.First())
	if _, err := pc.Final(serverFirst); err == nil {
		t.Error("a server with another salt got a proof")
	}
}

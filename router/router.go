// Package router decides where a statement runs: on the primary, on a
// replica that is caught up enough, or on the shards that own its key. The
// wire packages ask it once per transaction (or per statement outside one)
// and lease a server connection for the answer.
//
// Decisions are values of a closed set of types, so a caller's switch
// names every case and a new kind of target cannot be ignored silently.
package router

// Target is where a statement goes. Its implementations are the types of
// this package only.
type Target interface{ isTarget() }

// Primary sends the statement to the cluster's primary.
type Primary struct{}

func (Primary) isTarget() {}

var _ Target = Primary{}

// Router turns a client's request into a Target. The zero Router sends
// everything to the primary: correct for any statement, and what
// unsharded clusters without read/write splitting do.
type Router struct{}

// Route decides the target of the next transaction.
func (Router) Route() Target { return Primary{} }

package router

// Target is where a statement goes: Primary or Replica (Decide), or a
// ShardTarget (ShardRouting.PlanShard). Its implementations are the types
// of this package only.
type Target interface{ isTarget() }

// Primary sends the statement to the cluster's primary.
type Primary struct{}

func (Primary) isTarget() {}

var _ Target = Primary{}

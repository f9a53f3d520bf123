//! drover-cluster: nodes, membership, failure detection, fenced shard ownership and remote
//! device calls.

//! drover-api: the HTTP API — routes, typed errors, authentication, roles, SSE and audit.

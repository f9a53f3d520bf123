//! drover-auth: the authentication core behind the HTTP API — SRP-6a login, tokens, API keys
//! and the short-lived login state kept in Redis. No HTTP here.

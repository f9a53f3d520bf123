//! Redis-backed short-lived state.

//! Async RouterOS API client (placeholder while the crate is written).

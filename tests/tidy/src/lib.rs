//! Holds no code: the repository-wide checks live in `tests/tidy.rs` of this crate.

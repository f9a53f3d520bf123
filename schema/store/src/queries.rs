//! queries (in progress).

//! The storage conformance suite: every backend runs these against a fresh store.

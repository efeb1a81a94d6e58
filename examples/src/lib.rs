//! Shared pieces of the examples: a deterministic demo-data generator.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // example code: failures should be loud

pub mod demo;

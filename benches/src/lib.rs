//! Shared data generator for the benchmarks.

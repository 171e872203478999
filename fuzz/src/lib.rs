//! Support code of wsdrain's fuzz targets (see `docs/fuzzing.md`).
//!
//! [`ops`] is the operation model of the client, shared as the same file
//! with the property test `tests/proptest_ops.rs`.

pub mod ops;

//! strategies
#![deny(missing_docs)]

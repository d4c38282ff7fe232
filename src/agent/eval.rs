//! Running agent evaluation sets (defined in `crate::evalset::agent`): asking every
//! question on every prompt and model (`runner`), and the answers as a results matrix
//! (`matrix`) that reports and the run store take like any other run.

pub mod matrix;
pub mod runner;

//! Integration tests of vouch-dag: golden vectors from Kubo and the JS importer, property
//! tests of every round trip, hostile inputs, and the fuzz targets' logic over a seed corpus.

mod bad_input;
mod fixtures;
mod fuzz;
mod golden;
mod props;

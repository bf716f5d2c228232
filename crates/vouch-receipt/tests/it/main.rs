//! Integration tests of vouch-receipt: the golden vector (byte-exact, cross-checked in Python by
//! `testdata/check.py`), property tests of every round trip, tampering with every byte, each
//! verification claim, and bad input.

mod bad_input;
mod claims;
mod fixtures;
mod fuzz;
mod golden;
mod props;
mod tamper;

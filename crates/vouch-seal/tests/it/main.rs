//! vouch-seal integration tests: the public API only.

mod audit;
mod broker;
mod stream;

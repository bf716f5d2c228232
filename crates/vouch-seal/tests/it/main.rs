//! vouch-seal integration tests: the public API only.

mod broker;
mod stream;

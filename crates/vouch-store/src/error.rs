use std::path::PathBuf;

use cid::Cid;
use vouch_dag::DagError;

/// Everything the store can report. Variants name the CID or path they are about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("block {cid} not found in the store")]
    NotFound { cid: Cid },
    #[error("block {cid} is corrupt on disk ({path}, offset {offset}): {reason}; it will not be served")]
    Corrupt { cid: Cid, path: PathBuf, offset: u64, reason: String },
    #[error("the DAG under {root} is incomplete: block {missing} is not in the store")]
    Incomplete { root: Cid, missing: Cid },
    #[error("{cid} is not pinned")]
    NotPinned { cid: Cid },
    #[error("{0}")]
    Locked(String),
    #[error(
        "{path}: store format {found}, but this vouch reads format {expected}; use a matching vouch, or move the store aside"
    )]
    Format { path: PathBuf, found: i64, expected: i64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("store index ({path}): {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error(transparent)]
    Dag(#[from] DagError),
}

pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
    }
}

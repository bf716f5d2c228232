//! Integration tests of vouch-dag: golden vectors from Kubo and the JS importer, property
//! tests of every round trip, hostile inputs, and the fuzz targets' logic over a seed corpus.

mod bad_input;
mod fixtures;
mod fuzz;
mod golden;
mod props;

use vouch_dag::{Cid, DagError, MemoryBlocks};

/// Blocks of the DAG under `root` in DFS pre-order, each once, as `(cid, bytes)`: what a CAR
/// export writes. Shared by every module that needs a DAG's blocks.
pub fn dag_blocks(blocks: &MemoryBlocks, root: &Cid) -> Result<Vec<(Cid, Vec<u8>)>, DagError> {
    let mut out = Vec::new();
    vouch_dag::car::walk_dag(blocks, root, |c, d| {
        out.push((*c, d.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

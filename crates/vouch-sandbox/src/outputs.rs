//! Measuring the `/outputs` directory, during a run (about every `epoch_tick`) and after it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The size of a directory tree as the output limits count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OutputSize {
    /// Sum of the apparent sizes of the regular files (a sparse file counts in full).
    pub bytes: u64,
    /// Number of entries of any kind (files, directories, symlinks), the root excluded.
    pub entries: u64,
}

impl OutputSize {
    /// Whether this size is over either limit.
    pub(crate) fn exceeds(&self, max_bytes: u64, max_entries: u64) -> bool {
        self.bytes > max_bytes || self.entries > max_entries
    }
}

/// Walks `root` without following symlinks (a symlink counts as one entry of size 0, whatever it
/// points at) and stops once more than `max_entries` entries have been seen, so one call costs
/// at most `max_entries + 1` `lstat`s however many files a guest creates. Iterative: a deeply
/// nested tree cannot overflow the host stack.
pub(crate) fn measure(root: &Path, max_entries: u64) -> io::Result<OutputSize> {
    let mut size = OutputSize::default();
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            size.entries += 1;
            if size.entries > max_entries {
                return Ok(size);
            }
            // `DirEntry::metadata` does not follow symlinks.
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                size.bytes = size.bytes.saturating_add(meta.len());
            }
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_dirs_and_symlinks_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a"), [0u8; 10]).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/b"), [0u8; 5]).unwrap();
        // A symlink to a big directory outside counts as one entry of size 0.
        std::os::unix::fs::symlink("/usr", root.join("d/link")).unwrap();
        let size = measure(root, 100).unwrap();
        assert_eq!(size, OutputSize { bytes: 15, entries: 4 });
        assert!(size.exceeds(14, 100));
        assert!(size.exceeds(100, 3));
        assert!(!size.exceeds(15, 4));
    }

    #[test]
    fn sparse_files_count_in_full_and_walk_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        let f = fs::File::create(dir.path().join("sparse")).unwrap();
        f.set_len(1 << 40).unwrap();
        for i in 0..10 {
            fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
        }
        assert_eq!(measure(dir.path(), 1000).unwrap().bytes, (1 << 40) + 10);
        assert_eq!(measure(dir.path(), 3).unwrap().entries, 4);
    }
}

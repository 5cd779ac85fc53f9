//! External sorts that spill to disk, through one guard.
//!
//! `extsort` 0.5 writes a sorted segment once its buffer holds one entry
//! more than the segment size, and its `done` merges the segments on disk
//! only when the buffer still holds entries: when the last entry pushed
//! filled a segment, it returns the empty buffer and every entry on disk is
//! lost. [`Spill::done`] pushes a filler entry then, which the caller
//! skips.

use std::cmp::Ordering;

use extsort::{ExternalSorter, PushExternalSorter, Sortable, SortedIterator};

/// A push sorter of `T` that spills segments of `segment` entries to
/// `dir`, counting what it was given.
pub(crate) struct Spill<T: Sortable, F: Fn(&T, &T) -> Ordering + Send + Sync + Clone> {
    inner: PushExternalSorter<T, F>,
    segment: usize,
    pushed: u64,
}

impl<T: Sortable, F: Fn(&T, &T) -> Ordering + Send + Sync + Clone> Spill<T, F> {
    /// A sorter ordering by `cmp`, writing segments of `segment` entries
    /// into `dir` (which it does not remove).
    pub(crate) fn new(segment: usize, dir: std::path::PathBuf, cmp: F) -> Self {
        Spill {
            inner: ExternalSorter::new()
                .with_segment_size(segment)
                .with_sort_dir(dir)
                .pushed_by(cmp),
            segment,
            pushed: 0,
        }
    }

    pub(crate) fn push(&mut self, item: T) -> std::io::Result<()> {
        self.pushed += 1;
        self.inner.push(item)
    }

    /// Every entry pushed, sorted; and `filler()`, which the caller skips,
    /// if the last entry pushed filled a segment.
    pub(crate) fn done(
        mut self,
        filler: impl FnOnce() -> T,
    ) -> std::io::Result<SortedIterator<T, F>> {
        let per_segment = self.segment as u64 + 1;
        if self.pushed > 0 && self.pushed.is_multiple_of(per_segment) {
            self.inner.push(filler())?;
        }
        self.inner.done()
    }
}

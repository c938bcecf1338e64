//! [`TableCursor`]: a [`Cursor`] over one table, in both directions.

use std::sync::Arc;

use kevo_core::{Cursor, Result};

use crate::block::{BlockIter, Damage};
use crate::table::Table;

/// A [`Cursor`] over every point entry of a [`Table`], in internal-key
/// order (range tombstones are [`Table::range_tombstones`]; a table of
/// range tombstones alone has no entry to visit).
///
/// It owns what it needs (an `Arc<Table>` and the blocks it is positioned
/// in), so it can be stored, moved across threads and outlive the handle it
/// came from. It walks the table's in-memory index and loads one data block
/// at a time through the table's block cache. Damage found on the way is
/// [`kevo_core::Error::Corruption`] and leaves the cursor invalid, as the
/// [`Cursor`] contract says.
#[derive(Debug)]
pub struct TableCursor {
    table: Arc<Table>,
    /// Position in the index of the data block `data` walks, if any.
    block: Option<usize>,
    data: Option<BlockIter>,
    /// File offset of the block `data` walks.
    data_offset: u64,
    /// Whether blocks read from the file go into the block cache.
    fill_cache: bool,
    /// The charge of the block `data` holds, counted in the table's pin
    /// counter (0 without one).
    pinned: usize,
}

impl Drop for TableCursor {
    fn drop(&mut self) {
        self.unpin();
    }
}

impl Table {
    /// A cursor over every entry, in internal-key order. It is unpositioned
    /// until a `seek*` call.
    pub fn cursor(self: &Arc<Self>) -> TableCursor {
        TableCursor::new(Arc::clone(self))
    }
}

impl TableCursor {
    /// An unpositioned cursor over `table`.
    pub fn new(table: Arc<Table>) -> Self {
        TableCursor {
            table,
            block: None,
            data: None,
            data_offset: 0,
            fill_cache: true,
            pinned: 0,
        }
    }

    /// This cursor, reading blocks that are not cached from the file
    /// without caching them (it still uses blocks already cached). For
    /// one-pass reads such as compaction's, whose inputs are about to be
    /// deleted: their blocks would only push out blocks readers want.
    pub fn without_cache_fill(mut self) -> Self {
        self.fill_cache = false;
        self
    }

    /// The table this cursor walks.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    fn data_damage(&self, reason: Damage) -> kevo_core::Error {
        self.table.corrupt(self.data_offset, reason)
    }

    /// Loads data block `position` of the index (keeping the current one if
    /// it is the same block), or unloads everything if `position` is `None`.
    fn load_block(&mut self, position: Option<usize>) -> Result<()> {
        let Some(position) = position else {
            self.unload();
            return Ok(());
        };
        self.block = Some(position);
        let handle = self.table.index().handle(position);
        if self.data.is_some() && self.data_offset == handle.offset {
            return Ok(());
        }
        // The old block goes now (a failed read leaves none); its key
        // buffer serves the next.
        let buffer = self.data.take().map(BlockIter::into_buffer);
        self.unpin();
        let block = self.table.data_block(handle, self.fill_cache)?;
        if let Some(pins) = self.table.pin_counter() {
            self.pinned = block.charge();
            pins.fetch_add(self.pinned, std::sync::atomic::Ordering::Relaxed);
        }
        self.data_offset = handle.offset;
        self.data = Some(BlockIter::with_buffer(block, buffer.unwrap_or_default()));
        Ok(())
    }

    /// Drops the data block, and its charge in the pin counter.
    fn unload(&mut self) {
        self.block = None;
        self.data = None;
        self.unpin();
    }

    /// Takes the held block's charge out of the pin counter.
    fn unpin(&mut self) {
        if self.pinned > 0
            && let Some(pins) = self.table.pin_counter()
        {
            pins.fetch_sub(self.pinned, std::sync::atomic::Ordering::Relaxed);
        }
        self.pinned = 0;
    }

    /// Applies a move to the loaded data block (none loaded: nothing to do).
    fn move_data(&mut self, step: impl FnOnce(&mut BlockIter) -> Result<(), Damage>) -> Result<()> {
        match self.data.as_mut().map(step) {
            Some(Err(reason)) => Err(self.data_damage(reason)),
            _ => Ok(()),
        }
    }

    /// While the data block is exhausted, moves to the next block's first
    /// entry.
    fn skip_forward(&mut self) -> Result<()> {
        while !self.data.as_ref().is_some_and(BlockIter::valid) {
            let Some(current) = self.block else {
                self.data = None;
                return Ok(());
            };
            let next = Some(current + 1).filter(|&next| next < self.table.index().len());
            self.load_block(next)?;
            self.move_data(|d| d.seek_to_first())?;
        }
        Ok(())
    }

    /// While the data block is exhausted, moves to the previous block's
    /// last entry.
    fn skip_backward(&mut self) -> Result<()> {
        while !self.data.as_ref().is_some_and(BlockIter::valid) {
            let Some(current) = self.block else {
                self.data = None;
                return Ok(());
            };
            self.load_block(current.checked_sub(1))?;
            self.move_data(|d| d.seek_to_last())?;
        }
        Ok(())
    }

    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        let position = self.table.index().find_key(target);
        self.load_block(Some(position).filter(|&p| p < self.table.index().len()))?;
        self.move_data(|d| d.seek(target))?;
        self.skip_forward()
    }

    fn seek_to_first_inner(&mut self) -> Result<()> {
        self.load_block(Some(0).filter(|_| !self.table.index().is_empty()))?;
        self.move_data(|d| d.seek_to_first())?;
        self.skip_forward()
    }

    fn seek_to_last_inner(&mut self) -> Result<()> {
        self.load_block(self.table.index().len().checked_sub(1))?;
        self.move_data(|d| d.seek_to_last())?;
        self.skip_backward()
    }

    fn seek_for_prev_inner(&mut self, target: &[u8]) -> Result<()> {
        self.seek_inner(target)?;
        if !self.valid() {
            return self.seek_to_last_inner();
        }
        if self.key() != target {
            // Positioned at the first key > target: step back once.
            self.prev_inner()?;
        }
        Ok(())
    }

    fn next_inner(&mut self) -> Result<()> {
        self.move_data(|d| d.next())?;
        self.skip_forward()
    }

    fn prev_inner(&mut self) -> Result<()> {
        self.move_data(|d| d.prev())?;
        self.skip_backward()
    }

    /// Runs a move; on error leaves the cursor invalid.
    fn run(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let result = step(self);
        if result.is_err() {
            self.data = None;
        }
        result
    }
}

// `#[inline]` on the accessors: level cursors (`ConcatCursor<S>`, built in
// the engine's crate) call them several times per entry, and a call across
// crates is not inlined without it.
impl Cursor for TableCursor {
    #[inline]
    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIter::valid)
    }

    #[inline]
    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::key)
    }

    #[inline]
    fn value(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::value)
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.run(|c| c.seek_inner(target))
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.run(|c| c.seek_for_prev_inner(target))
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.run(Self::seek_to_first_inner)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.run(Self::seek_to_last_inner)
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid() {
            return Ok(());
        }
        self.run(Self::next_inner)
    }

    fn prev(&mut self) -> Result<()> {
        if !self.valid() {
            return Ok(());
        }
        self.run(Self::prev_inner)
    }

    /// Drops the data block (and its pin); the table stays open.
    fn release(&mut self) {
        self.unload();
    }
}

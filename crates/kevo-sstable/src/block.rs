//! The block codec: sorted entries with shared-prefix compression and
//! restart points. `BlockBuilder` writes one; [`Block`] checks and holds a
//! decoded one; `BlockIter` walks it in both directions. No I/O here.
//!
//! ```text
//! entry*  restart[0] .. restart[n-1]  n
//! entry = varint32 shared | varint32 unshared | varint32 value_len
//!         | key bytes [shared..] | value
//! restart[i], n: u32 little-endian; restart[0] = 0
//! ```
//!
//! An entry at a restart point stores its whole key (`shared = 0`), so a
//! seek binary-searches the restart points and then scans at most one
//! restart interval.

use std::cmp::Ordering;
use std::ops::Range;

use bytes::Bytes;
use kevo_core::{Reader, compare_internal_keys, put_varint32, split_internal_key};

use crate::format::{BLOCK_BYTES_MAX, INTERNAL_KEY_BYTES_MAX};

/// Bytes of one restart offset and of the restart count.
const RESTART_BYTES: usize = 4;

/// Builds one block from entries added in order.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    counter: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// An empty builder; `restart_interval` is at least 1.
    pub(crate) fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            counter: 0,
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Whether no entry was added since the last reset.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The block's size if it were finished now.
    pub(crate) fn size_estimate(&self) -> usize {
        self.buf.len() + (self.restarts.len() + 1) * RESTART_BYTES
    }

    /// Appends an entry. REQUIRES: `key` sorts after every key added since
    /// the last reset (the table writer checks this).
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(
            self.is_empty() || compare_internal_keys(&self.last_key, key) == Ordering::Less
        );
        let shared = if self.counter < self.restart_interval {
            common_prefix(&self.last_key, key)
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, (key.len() - shared) as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.entries += 1;
    }

    /// The last key added.
    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished block's bytes.
    /// Call [`BlockBuilder::reset`] before adding again.
    pub(crate) fn finish(&mut self) -> &[u8] {
        for &restart in &self.restarts {
            self.buf.extend_from_slice(&restart.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        &self.buf
    }

    /// Empties the builder, keeping its buffers.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// What [`BlockBuilder::finish`] returns when nothing was added: no
/// entries, the restart array `[0]` and the count 1. [`Block::new`] refuses
/// it (a data block always holds an entry); only the index block of a table
/// without data blocks takes this form.
pub(crate) const EMPTY_BLOCK: [u8; 2 * RESTART_BYTES] = [0, 0, 0, 0, 1, 0, 0, 0];

/// Restart points a [`Block`] keeps a copy of in the handle itself.
const INLINE_RESTARTS: usize = 4;

/// A decoded (uncompressed) block whose restart array has been checked.
///
/// Blocks are immutable; a `Block` is a handle on reference-counted bytes,
/// so clones are cheap and share them. Blocks are shared this way between
/// the block cache and cursors. Values handed out are zero-copy slices of
/// its bytes.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    /// Where the restart array starts (= end of the entries).
    restarts_offset: u32,
    num_restarts: u32,
    /// The first restart points (0 past `num_restarts`), copied out of the
    /// restart array: a lookup can then start fetching the restart keys as
    /// soon as it holds the handle (which a block cache keeps in its hash
    /// table), instead of first waiting for the block's last cache line.
    /// A 4 KiB block of 100-byte entries has 3 restarts.
    first_restarts: [u32; INLINE_RESTARTS],
}

impl Block {
    /// Checks the restart array of `data` (the block's uncompressed bytes):
    /// at least one restart, the first at 0, strictly increasing, all inside
    /// the entry area. Returns why not as a static reason.
    pub(crate) fn new(data: Bytes) -> Result<Block, &'static str> {
        if data.len() > BLOCK_BYTES_MAX {
            return Err("block longer than BLOCK_BYTES_MAX");
        }
        let count_at = data
            .len()
            .checked_sub(RESTART_BYTES)
            .ok_or("block too short for its restart count")?;
        let num_restarts = Reader::new(&data[count_at..])
            .u32_le()
            .ok_or("block too short for its restart count")?;
        let array_bytes = (num_restarts as usize)
            .checked_mul(RESTART_BYTES)
            .ok_or("restart count overflows")?;
        let restarts_offset = count_at
            .checked_sub(array_bytes)
            .ok_or("restart count larger than the block")?;
        if num_restarts == 0 {
            return Err("block has no restart point");
        }
        let mut block = Block {
            restarts_offset: restarts_offset as u32,
            num_restarts,
            data,
            first_restarts: [0; INLINE_RESTARTS],
        };
        let mut previous = None;
        for i in 0..num_restarts {
            let point = block.restart_point_in_array(i);
            let ok = match previous {
                None => point == 0,
                Some(p) => point > p,
            };
            if !ok || point >= block.restarts_offset {
                return Err("restart points out of order or outside the entries");
            }
            previous = Some(point);
        }
        for i in 0..num_restarts.min(INLINE_RESTARTS as u32) {
            block.first_restarts[i as usize] = block.restart_point_in_array(i);
        }
        Ok(block)
    }

    /// The block's uncompressed bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Bytes this block occupies in memory, as charged to a block cache.
    pub fn charge(&self) -> usize {
        self.data.len() + std::mem::size_of::<Block>()
    }

    /// Starts fetching what a search reads first (see [`touch`]): the
    /// cache lines of the restart keys when the handle knows where they
    /// are, else the restart array.
    pub(crate) fn touch_restart_keys(&self) {
        if self.num_restarts as usize <= INLINE_RESTARTS {
            let mut acc = 0;
            for &point in &self.first_restarts {
                acc ^= self.data.get(point as usize).copied().unwrap_or(0);
            }
            std::hint::black_box(acc);
        } else {
            touch(
                self.data
                    .get(self.restarts_offset as usize..)
                    .unwrap_or(&[]),
            );
        }
    }

    /// Number of restart points.
    pub fn restart_count(&self) -> u32 {
        self.num_restarts
    }

    fn restart_point(&self, index: u32) -> u32 {
        match self.first_restarts.get(index as usize) {
            Some(&point) => point,
            None => self.restart_point_in_array(index),
        }
    }

    fn restart_point_in_array(&self, index: u32) -> u32 {
        let at = self.restarts_offset as usize + index as usize * RESTART_BYTES;
        let mut bytes = [0u8; RESTART_BYTES];
        // In bounds: `Block::new` checked the array fits.
        if let Some(src) = self.data.get(at..at + RESTART_BYTES) {
            bytes.copy_from_slice(src);
        }
        u32::from_le_bytes(bytes)
    }
}

/// Why an entry did not decode.
pub(crate) type Damage = &'static str;

/// Decodes an entry header: `(shared, unshared, value_len, header bytes)`.
/// Most headers are three one-byte varints; that case is decoded directly.
fn entry_header(input: &[u8]) -> Result<(usize, usize, usize, usize), Damage> {
    if let [a, b, c, ..] = *input
        && (a | b | c) < 0x80
    {
        return Ok((usize::from(a), usize::from(b), usize::from(c), 3));
    }
    let mut reader = Reader::new(input);
    let bad_header = "truncated entry header";
    let shared = reader.varint32().ok_or(bad_header)? as usize;
    let unshared = reader.varint32().ok_or(bad_header)? as usize;
    let value_len = reader.varint32().ok_or(bad_header)? as usize;
    Ok((shared, unshared, value_len, reader.position()))
}

impl Block {
    /// Checks that every restart point is the start of an entry that
    /// stores its whole key, by walking every entry. Seeks trust the
    /// restart array; [`Table::verify`](crate::Table::verify) calls this.
    pub(crate) fn check_restarts(&self) -> Result<(), Damage> {
        let end = self.restarts_offset as usize;
        let (mut pos, mut next_restart) = (0usize, 0u32);
        while pos < end {
            let input = self.data.get(pos..end).ok_or("entry outside block")?;
            let (shared, unshared, value_len, header) = entry_header(input)?;
            if next_restart < self.num_restarts && self.restart_point(next_restart) as usize == pos
            {
                if shared != 0 {
                    return Err("entry at a restart point shares bytes");
                }
                next_restart += 1;
            }
            if next_restart < self.num_restarts && (self.restart_point(next_restart) as usize) < pos
            {
                return Err("restart point inside an entry");
            }
            let len = header
                .checked_add(unshared)
                .and_then(|n| n.checked_add(value_len))
                .filter(|&n| n <= input.len())
                .ok_or("entry runs past the entries")?;
            pos += len;
        }
        if next_restart != self.num_restarts {
            return Err("restart point inside an entry");
        }
        Ok(())
    }

    /// The whole key stored at restart point `index`, read in place.
    fn restart_key(&self, index: u32) -> Result<&[u8], Damage> {
        let at = self.restart_point(index) as usize;
        let input = self
            .data
            .get(at..self.restarts_offset as usize)
            .ok_or("entry outside block")?;
        let (shared, unshared, _, header) = entry_header(input)?;
        if shared != 0 {
            return Err("entry at a restart point shares bytes");
        }
        input
            .get(header..header + unshared)
            .ok_or("key runs past the entries")
    }
}

/// Orders the internal key `key` against the internal key `(user_key,
/// trailer)` as [`compare_internal_keys`] orders encoded keys, without
/// encoding the second one.
pub(crate) fn compare_to(key: &[u8], user_key: &[u8], trailer: u64) -> Ordering {
    let (key_user, key_trailer) = split_internal_key(key).unwrap_or((key, 0));
    key_user
        .cmp(user_key)
        .then_with(|| trailer.cmp(&key_trailer))
}

/// Where the parts of one entry lie in its block.
struct EntryBounds {
    /// Leading bytes of the key shared with the previous key.
    shared: usize,
    /// The key's bytes after `shared`.
    key_suffix: Range<usize>,
    /// The value (its end is where the next entry starts).
    value: Range<usize>,
}

/// Keys up to this long are rebuilt on the stack by [`Block::get`].
const INLINE_KEY_BYTES: usize = 128;

/// A key rebuilt from shared-prefix entries: on the stack while it fits in
/// [`INLINE_KEY_BYTES`], on the heap beyond.
struct ScratchKey {
    inline: [u8; INLINE_KEY_BYTES],
    inline_len: usize,
    heap: Option<Vec<u8>>,
}

impl ScratchKey {
    fn new() -> Self {
        ScratchKey {
            inline: [0; INLINE_KEY_BYTES],
            inline_len: 0,
            heap: None,
        }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(heap) => heap,
            None => &self.inline[..self.inline_len],
        }
    }

    /// Keeps the first `shared` bytes (at most the current length) and
    /// appends `suffix`.
    fn replace_tail(&mut self, shared: usize, suffix: &[u8]) {
        let len = shared + suffix.len();
        if self.heap.is_none() && len <= INLINE_KEY_BYTES {
            self.inline[shared..len].copy_from_slice(suffix);
            self.inline_len = len;
            return;
        }
        let inline = &self.inline[..self.inline_len];
        let heap = self.heap.get_or_insert_with(|| inline.to_vec());
        heap.truncate(shared);
        heap.extend_from_slice(suffix);
    }
}

/// Bytes of a cache line.
const LINE_BYTES: usize = 64;

/// Most bytes [`touch`] reads lines of: beyond, fetching whole ranges
/// would cost more memory bandwidth than the misses it saves.
const TOUCH_BYTES_MAX: usize = 4096;

/// Reads one byte of every cache line `bytes` spans (up to
/// [`TOUCH_BYTES_MAX`]), with independent loads: the lines are then
/// fetched in parallel, where a search would otherwise miss on them one
/// after the other (each entry's position depends on the one before). Out
/// of main memory a miss costs about 250 ns on our machines, so a block
/// search that misses five times in a row costs more than all the rest of
/// a lookup.
fn touch(bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(TOUCH_BYTES_MAX)];
    let mut acc = bytes.last().copied().unwrap_or(0);
    for byte in bytes.iter().step_by(LINE_BYTES) {
        acc ^= *byte;
    }
    std::hint::black_box(acc);
}

/// What [`Block::get`] found.
#[derive(Debug)]
pub(crate) struct BlockHit {
    /// The entry's trailer (seqno and kind, unchecked).
    pub(crate) trailer: u64,
    /// Where its value lies in [`Block::data`].
    pub(crate) value: Range<usize>,
}

impl Block {
    /// Bounds of the entry at offset `at`, checked against the block and
    /// against the previous key's length.
    fn entry_at(&self, at: usize, previous_key_len: usize) -> Result<EntryBounds, Damage> {
        let limit = self.restarts_offset as usize;
        let input = self.data.get(at..limit).ok_or("entry outside block")?;
        let (shared, unshared, value_len, header) = entry_header(input)?;
        if shared > previous_key_len {
            return Err("entry shares more bytes than the previous key has");
        }
        if shared + unshared > INTERNAL_KEY_BYTES_MAX {
            return Err("key longer than INTERNAL_KEY_BYTES_MAX");
        }
        let key_start = at + header;
        let value_start = key_start + unshared;
        let end = value_start + value_len;
        if end > limit {
            return Err("entry runs past the entries");
        }
        Ok(EntryBounds {
            shared,
            key_suffix: key_start..value_start,
            value: value_start..end,
        })
    }

    /// The last restart point whose key is `< (user_key, trailer)`, or 0.
    fn restart_before(&self, user_key: &[u8], trailer: u64) -> Result<u32, Damage> {
        let (mut left, mut right) = (0u32, self.num_restarts - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            if compare_to(self.restart_key(mid)?, user_key, trailer) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        Ok(left)
    }

    /// Point lookup: the first entry at or after the internal key
    /// `(user_key, trailer)`, if its user key is `user_key`.
    ///
    /// Same search as [`BlockIter::seek`] (binary search over the restart
    /// points, then a scan of at most one restart interval), without an
    /// iterator: the key is rebuilt in a stack buffer and nothing is
    /// allocated for keys up to 128 bytes.
    pub(crate) fn get(&self, user_key: &[u8], trailer: u64) -> Result<Option<BlockHit>, Damage> {
        let entries_end = self.restarts_offset as usize;
        let restart = self.restart_before(user_key, trailer)?;
        let mut at = self.restart_point(restart) as usize;
        // The scan reads at most this interval and the next restart's entry.
        let interval_end = match restart + 1 {
            next if next < self.num_restarts => self.restart_point(next) as usize + LINE_BYTES,
            _ => entries_end,
        };
        touch(
            self.data
                .get(at..interval_end.min(entries_end))
                .unwrap_or(&[]),
        );
        let mut key = ScratchKey::new();
        while at < entries_end {
            let entry = self.entry_at(at, key.as_slice().len())?;
            key.replace_tail(entry.shared, &self.data[entry.key_suffix]);
            if compare_to(key.as_slice(), user_key, trailer) != Ordering::Less {
                let (found_user_key, found_trailer) =
                    split_internal_key(key.as_slice()).ok_or("entry key does not parse")?;
                return Ok((found_user_key == user_key).then_some(BlockHit {
                    trailer: found_trailer,
                    value: entry.value,
                }));
            }
            at = entry.value.end;
        }
        Ok(None)
    }
}

/// A key suffix this short or shorter (most are: a 16-byte user key shares
/// most of its bytes with the previous one) is copied into [`BlockIter`]'s
/// key as one fixed-size chunk, a couple of moves, instead of through a call
/// to `memcpy`: the bytes past the suffix are cut off again.
const KEY_SLACK: usize = 16;

/// A position in a [`Block`], owning a handle on it.
#[derive(Debug, Clone)]
pub(crate) struct BlockIter {
    block: Block,
    /// Offset of the current entry; `restarts_offset` when invalid.
    current: u32,
    /// Offset just past the current entry.
    next: u32,
    /// The restart interval holding the current entry.
    restart_index: u32,
    /// Where the restart interval after `restart_index` starts
    /// (`restarts_offset` past the last): an entry at or past it moves
    /// `restart_index` on.
    next_restart: u32,
    key: Vec<u8>,
    value_start: u32,
    value_end: u32,
}

impl BlockIter {
    /// An unpositioned iterator over `block`.
    pub(crate) fn new(block: Block) -> Self {
        Self::with_buffer(block, Vec::new())
    }

    /// As [`new`](Self::new), keeping keys in `buffer` (the one
    /// [`into_buffer`](Self::into_buffer) gave back from an iterator over
    /// another block), so that moving to the next block allocates nothing.
    pub(crate) fn with_buffer(block: Block, mut buffer: Vec<u8>) -> Self {
        // Room for a 16-byte user key, its trailer and a chunk's slack at
        // once: growing by each first longer key would reallocate twice.
        buffer.reserve(64);
        let end = block.restarts_offset;
        BlockIter {
            block,
            current: end,
            next: end,
            restart_index: 0,
            next_restart: end,
            key: buffer,
            value_start: 0,
            value_end: 0,
        }
    }

    /// The key buffer, for [`with_buffer`](Self::with_buffer).
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.key
    }

    #[inline]
    pub(crate) fn valid(&self) -> bool {
        self.current < self.block.restarts_offset
    }

    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    #[inline]
    pub(crate) fn value(&self) -> &[u8] {
        &self.block.data[self.value_start as usize..self.value_end as usize]
    }

    fn invalidate(&mut self) {
        self.current = self.block.restarts_offset;
        self.next = self.current;
        self.key.clear();
    }

    /// Decodes the entry at `self.next`, which must be before the restart
    /// array; the key buffer holds the previous key.
    fn parse_next(&mut self) -> Result<(), Damage> {
        let result = self.parse_at(self.next as usize);
        if result.is_err() {
            self.invalidate();
        }
        result
    }

    fn parse_at(&mut self, at: usize) -> Result<(), Damage> {
        let entry = self.block.entry_at(at, self.key.len())?;
        let (shared, suffix) = (entry.shared, entry.key_suffix);
        let len = shared + suffix.len();
        self.key.truncate(shared);
        let data = &self.block.data;
        let chunk = data
            .get(suffix.start..suffix.start + KEY_SLACK)
            .and_then(|chunk| <&[u8; KEY_SLACK]>::try_from(chunk).ok());
        match chunk {
            Some(chunk) if suffix.len() <= KEY_SLACK => {
                self.key.extend_from_slice(chunk);
                self.key.truncate(len);
            }
            _ => self.key.extend_from_slice(&data[suffix]),
        }
        self.current = at as u32;
        self.next = entry.value.end as u32;
        self.value_start = entry.value.start as u32;
        self.value_end = entry.value.end as u32;
        while self.current >= self.next_restart {
            self.restart_index += 1;
            self.next_restart = self.restart_after(self.restart_index);
        }
        Ok(())
    }

    /// Where the restart interval after `index` starts, or
    /// `restarts_offset` past the last.
    fn restart_after(&self, index: u32) -> u32 {
        if index + 1 < self.block.num_restarts {
            self.block.restart_point(index + 1)
        } else {
            self.block.restarts_offset
        }
    }

    fn seek_to_restart(&mut self, index: u32) {
        self.key.clear();
        self.restart_index = index;
        self.next_restart = self.restart_after(index);
        let point = self.block.restart_point(index);
        self.current = point;
        self.next = point;
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<(), Damage> {
        self.seek_to_restart(0);
        self.parse_next()
    }

    pub(crate) fn seek_to_last(&mut self) -> Result<(), Damage> {
        self.seek_to_restart(self.block.num_restarts - 1);
        self.parse_next()?;
        while self.next < self.block.restarts_offset {
            self.parse_next()?;
        }
        Ok(())
    }

    pub(crate) fn next(&mut self) -> Result<(), Damage> {
        debug_assert!(self.valid());
        if self.next >= self.block.restarts_offset {
            self.invalidate();
            return Ok(());
        }
        self.parse_next()
    }

    pub(crate) fn prev(&mut self) -> Result<(), Damage> {
        debug_assert!(self.valid());
        let original = self.current;
        while self.block.restart_point(self.restart_index) >= original {
            if self.restart_index == 0 {
                self.invalidate();
                return Ok(());
            }
            self.restart_index -= 1;
        }
        self.seek_to_restart(self.restart_index);
        loop {
            self.parse_next()?;
            if self.next >= original {
                break;
            }
        }
        if self.next != original {
            self.invalidate();
            return Err("entries do not chain up to the previous position");
        }
        Ok(())
    }

    /// Positions at the first entry `>= target`, or invalid if none.
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<(), Damage> {
        // The last restart whose key is < target (or restart 0).
        let (mut left, mut right) = (0u32, self.block.num_restarts - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            let below = self
                .block
                .restart_key(mid)
                .map(|key| compare_internal_keys(key, target) == Ordering::Less);
            match below {
                Ok(true) => left = mid,
                Ok(false) => right = mid - 1,
                Err(reason) => {
                    self.invalidate();
                    return Err(reason);
                }
            }
        }
        self.seek_to_restart(left);
        loop {
            if self.next >= self.block.restarts_offset {
                self.invalidate();
                return Ok(());
            }
            self.parse_next()?;
            if compare_internal_keys(&self.key, target) != Ordering::Less {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{InternalKey, ValueKind};
    use proptest::prelude::*;

    fn ik(key: &str, seqno: u64) -> Vec<u8> {
        InternalKey::new(key.as_bytes(), seqno, ValueKind::Put)
            .as_bytes()
            .to_vec()
    }

    fn build(entries: &[(Vec<u8>, Vec<u8>)], interval: usize) -> Block {
        let mut builder = BlockBuilder::new(interval);
        for (k, v) in entries {
            builder.add(k, v);
        }
        Block::new(Bytes::copy_from_slice(builder.finish())).unwrap()
    }

    fn entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| (ik(&format!("key{i:04}"), 1), format!("v{i}").into_bytes()))
            .collect()
    }

    #[test]
    fn forward_and_backward_walks_see_every_entry() {
        for interval in [1, 2, 3, 16] {
            let entries = entries(37);
            let mut it = BlockIter::new(build(&entries, interval));
            it.seek_to_first().unwrap();
            for (k, v) in &entries {
                assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
                it.next().unwrap();
            }
            assert!(!it.valid());
            it.seek_to_last().unwrap();
            for (k, _) in entries.iter().rev() {
                assert_eq!(it.key(), &k[..]);
                it.prev().unwrap();
            }
            assert!(!it.valid());
        }
    }

    #[test]
    fn seek_lands_on_first_key_at_or_after_target() {
        let entries = entries(50);
        let mut it = BlockIter::new(build(&entries, 4));
        for (i, (k, _)) in entries.iter().enumerate() {
            it.seek(k).unwrap();
            assert_eq!(it.key(), &k[..]);
            // Just after key i (an older seqno of the same user key).
            let after = ik(&format!("key{i:04}"), 0);
            it.seek(&after).unwrap();
            match entries.get(i + 1) {
                Some((next, _)) => assert_eq!(it.key(), &next[..]),
                None => assert!(!it.valid()),
            }
        }
    }

    /// Sorted, distinct user keys of 0 to 40 bytes over a small alphabet
    /// (long shared prefixes, suffixes on both sides of `KEY_SLACK`), with
    /// values of 0 to 2 bytes (so the last keys sit near the block's end).
    fn varied_entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let key = proptest::collection::vec(b'a'..=b'c', 0..40);
        let value = proptest::collection::vec(any::<u8>(), 0..3);
        proptest::collection::btree_map(key, value, 1..60).prop_map(|map| {
            map.into_iter()
                .map(|(k, v)| {
                    (
                        InternalKey::new(&k, 7, ValueKind::Put).as_bytes().to_vec(),
                        v,
                    )
                })
                .collect()
        })
    }

    proptest! {
        /// Every move rebuilds every key and value exactly, whatever the
        /// suffix lengths and restart interval, and an iterator given the
        /// key buffer of one over another block does too.
        #[test]
        fn every_move_rebuilds_keys_of_every_length(
            first in varied_entries(),
            second in varied_entries(),
            interval in 1usize..20,
        ) {
            let mut it = BlockIter::new(build(&first, interval));
            it.seek_to_last().unwrap();
            let buffer = it.into_buffer();
            let mut it = BlockIter::with_buffer(build(&second, interval), buffer);
            it.seek_to_first().unwrap();
            for (k, v) in &second {
                prop_assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
                it.next().unwrap();
            }
            prop_assert!(!it.valid());
            it.seek_to_last().unwrap();
            for (k, v) in second.iter().rev() {
                prop_assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
                it.prev().unwrap();
            }
            prop_assert!(!it.valid());
            for (k, v) in &second {
                it.seek(k).unwrap();
                prop_assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
            }
            // Between keys: a target after each key lands on the next.
            for (i, (k, _)) in second.iter().enumerate() {
                let after = InternalKey::new(kevo_core::user_key(k), 6, ValueKind::Put);
                it.seek(after.as_bytes()).unwrap();
                match second.get(i + 1) {
                    Some((next, _)) => prop_assert_eq!(it.key(), &next[..]),
                    None => prop_assert!(!it.valid()),
                }
            }
        }
    }

    #[test]
    fn an_empty_builder_finishes_as_the_empty_block() {
        let mut builder = BlockBuilder::new(1);
        assert_eq!(builder.finish(), &EMPTY_BLOCK[..]);
        assert!(Block::new(Bytes::from_static(&EMPTY_BLOCK)).is_err());
    }

    #[test]
    fn restart_array_damage_is_rejected() {
        assert!(Block::new(Bytes::from_static(&[])).is_err());
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0])).is_err());
        assert!(Block::new(Bytes::from_static(&[255, 255, 255, 255])).is_err());
        // One restart at 0, but no entries.
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0, 1, 0, 0, 0])).is_err());
    }
}

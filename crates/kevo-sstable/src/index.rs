//! The index as a table keeps it in memory: the index block decoded once,
//! at open, into flat arrays. No I/O here.
//!
//! Searching the index block itself costs, per binary-search probe, a load
//! of a restart offset and then of an entry somewhere in a block of about
//! 37 bytes per data block, and a varint decode: two dependent cache
//! misses per probe once the table is large. [`BlockIndex`] instead keeps
//!
//! - `windows`: for each separator, 8 bytes of its user key taken just
//!   after a prefix that the separators' user keys share, as a big-endian
//!   `u64` (zero-padded). Keys of one table usually share a long prefix
//!   (`user:000000…`), so these 8 bytes are what tells them apart. The
//!   binary search runs over this dense array (8 bytes per data block, so
//!   its upper levels stay in cache) and compares full keys only among
//!   separators whose windows are equal.
//!
//!   The prefix is the one the first and the second-to-last separators
//!   share: the last is usually the short successor of the table's last
//!   key (`"1"` after `"0999…"`), which shares nothing, and would otherwise
//!   leave no prefix at all. Separators after the prefixed run (the last,
//!   usually) get the window `u64::MAX`, which keeps the windows sorted;
//! - the separators' bytes back to back, with their start offsets;
//! - the decoded block handles.
//!
//! Memory: `8 (window) + 16 (handle) + 4 (offset)` bytes per data block
//! plus the separators' bytes, about 52 bytes per block for 16-byte user
//! keys (1.4 MiB for a table of 1 M such entries in 4 KiB blocks), in place
//! of the about 37 bytes per block the raw index block took.

use std::cmp::Ordering;

use kevo_core::{TRAILER_BYTES, split_internal_key};

use bytes::Bytes;

use crate::block::{Block, BlockIter, Damage, EMPTY_BLOCK, compare_to};
use crate::format::{BLOCK_BYTES_MAX, BlockHandle};

/// Bytes of a user key compared through a window.
const WINDOW_BYTES: usize = 8;

/// The decoded index of one table: separator `i` and the handle of data
/// block `i`, for every data block, searchable without decoding.
///
/// Invariants (checked by [`BlockIndex::decode`]): at least one entry,
/// unless the table has no data block (a table of range tombstones alone);
/// separators are internal keys (at least a trailer long) in strictly
/// increasing internal-key order; every handle lies before `data_end`.
#[derive(Debug)]
pub(crate) struct BlockIndex {
    /// Every separator's bytes, back to back.
    keys: Vec<u8>,
    /// Separator `i` is `keys[key_starts[i]..key_starts[i + 1]]`
    /// (one more entry than there are blocks).
    key_starts: Vec<u32>,
    handles: Vec<BlockHandle>,
    /// Separators `0..prefixed` have user keys starting with the first
    /// separator's first `prefix_len` bytes; the rest sort after every
    /// key that does.
    prefix_len: usize,
    prefixed: usize,
    /// Per separator: [`window`] of its user key after `prefix_len`, or
    /// `u64::MAX` from `prefixed` on.
    windows: Vec<u64>,
}

/// The [`WINDOW_BYTES`] bytes of `rest` as a big-endian number, zero-padded
/// when `rest` is shorter. For user keys `a` and `b` that share a prefix,
/// `window(a') < window(b')` of the rests implies `a < b`; equal windows
/// decide nothing.
fn window(rest: &[u8]) -> u64 {
    let mut bytes = [0u8; WINDOW_BYTES];
    let n = rest.len().min(WINDOW_BYTES);
    bytes[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

impl BlockIndex {
    /// An index of no data block.
    fn empty() -> BlockIndex {
        BlockIndex {
            keys: Vec::new(),
            key_starts: vec![0],
            handles: Vec::new(),
            prefix_len: 0,
            prefixed: 0,
            windows: Vec::new(),
        }
    }

    /// Decodes and checks the index block, given its (uncompressed)
    /// contents. `data_end` is where the data blocks must end (the offset
    /// of the first block after them). `empty_allowed`: whether the table
    /// has no data block, in which case the index must be the empty block
    /// (and otherwise must not be).
    pub(crate) fn decode(
        contents: Bytes,
        data_end: u64,
        empty_allowed: bool,
    ) -> Result<BlockIndex, Damage> {
        if contents[..] == EMPTY_BLOCK {
            return if empty_allowed {
                Ok(BlockIndex::empty())
            } else {
                Err("index has no entries")
            };
        }
        if empty_allowed {
            return Err("index has entries, but the table has no point entry");
        }
        let block = Block::new(contents)?;
        // Restart interval 1: one restart per entry, bounded by the block.
        let count = block.restart_count() as usize;
        let mut keys = Vec::with_capacity(block.data().len());
        let mut key_starts = Vec::with_capacity(count + 1);
        let mut handles = Vec::with_capacity(count);
        key_starts.push(0);
        let mut entries = BlockIter::new(block);
        entries.seek_to_first()?;
        while entries.valid() {
            let key = entries.key();
            if key.len() < TRAILER_BYTES {
                return Err("index separator shorter than a trailer");
            }
            if let Some(last) = handles.len().checked_sub(1) {
                let previous = &keys[key_starts[last] as usize..];
                if kevo_core::compare_internal_keys(previous, key) != Ordering::Less {
                    return Err("index separators out of order");
                }
            }
            let handle =
                BlockHandle::decode_varint(entries.value()).ok_or("bad block handle in index")?;
            let inside = handle.end_with_trailer().is_some_and(|end| end <= data_end);
            if !inside || handle.size > BLOCK_BYTES_MAX as u64 {
                return Err("index entry points outside the file");
            }
            keys.extend_from_slice(key);
            // The keys came from one block, which is at most BLOCK_BYTES_MAX.
            key_starts.push(keys.len() as u32);
            handles.push(handle);
            entries.next()?;
        }
        if handles.is_empty() {
            return Err("index has no entries");
        }
        keys.shrink_to_fit();
        let mut index = BlockIndex {
            keys,
            key_starts,
            handles,
            prefix_len: 0,
            prefixed: 0,
            windows: Vec::new(),
        };
        // Sorted keys: what the first and the second-to-last share, all
        // between them share.
        let n = index.len();
        let first = index.user_key(0);
        let other = index.user_key(n.saturating_sub(2));
        let prefix_len = first.iter().zip(other).take_while(|(a, b)| a == b).count();
        let prefix = &first[..prefix_len];
        let windows: Vec<u64> = (0..n)
            .map(|i| {
                index
                    .user_key(i)
                    .strip_prefix(prefix)
                    .map_or(u64::MAX, window)
            })
            .collect();
        index.prefixed = (0..n)
            .position(|i| !index.user_key(i).starts_with(prefix))
            .unwrap_or(n);
        index.prefix_len = prefix_len;
        index.windows = windows;
        Ok(index)
    }

    /// Number of data blocks.
    /// Bytes this index holds in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.keys.capacity()
            + self.key_starts.capacity() * std::mem::size_of::<u32>()
            + self.handles.capacity() * std::mem::size_of::<BlockHandle>()
            + self.windows.capacity() * std::mem::size_of::<u64>()
    }

    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the table has no data block.
    pub(crate) fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Separator `i` (an internal key).
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        &self.keys[self.key_starts[i] as usize..self.key_starts[i + 1] as usize]
    }

    fn user_key(&self, i: usize) -> &[u8] {
        let key = self.key(i);
        &key[..key.len() - TRAILER_BYTES]
    }

    /// The handle of data block `i`.
    pub(crate) fn handle(&self, i: usize) -> BlockHandle {
        self.handles[i]
    }

    /// The first block whose separator is `>= (user_key, trailer)` in
    /// internal-key order (the only block that can hold that key), or
    /// `len()` if there is none.
    pub(crate) fn find(&self, user_key: &[u8], trailer: u64) -> usize {
        let n = self.len();
        if n == 0 {
            return 0;
        }
        let prefix = &self.user_key(0)[..self.prefix_len];
        let Some(rest) = user_key.strip_prefix(prefix) else {
            // Not prefixed: below every prefixed separator, or above them
            // all and among the few after them.
            if user_key < prefix {
                return 0;
            }
            return self.search_keys(self.prefixed, n, user_key, trailer);
        };
        let target = window(rest);
        // Branch-free lower bound over the windows: `base` ends on the last
        // window `< target`, if any.
        let windows = &self.windows[..];
        let (mut base, mut size) = (0, n);
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            base = if windows[mid] < target { mid } else { base };
            size -= half;
        }
        let lo = base + usize::from(windows[base] < target);
        // Equal windows say nothing: binary-search their run on full keys.
        let mut hi = lo;
        if lo < n && windows[lo] == target {
            hi += windows[lo..].partition_point(|&w| w == target);
        }
        self.search_keys(lo, hi, user_key, trailer)
    }

    /// The first separator in `lo..hi` that is `>= (user_key, trailer)`,
    /// or `hi`, by binary search on the full keys.
    fn search_keys(&self, mut lo: usize, mut hi: usize, user_key: &[u8], trailer: u64) -> usize {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if compare_to(self.key(mid), user_key, trailer) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// [`BlockIndex::find`] for an encoded internal key.
    pub(crate) fn find_key(&self, target: &[u8]) -> usize {
        let (user_key, trailer) = split_internal_key(target).unwrap_or((target, 0));
        self.find(user_key, trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockBuilder;
    use kevo_core::{InternalKey, ValueKind, compare_internal_keys};

    fn ik(key: &[u8], seqno: u64) -> Vec<u8> {
        InternalKey::new(key, seqno, ValueKind::Put)
            .as_bytes()
            .to_vec()
    }

    fn index_of(separators: &[Vec<u8>]) -> BlockIndex {
        let mut builder = BlockBuilder::new(1);
        for (i, key) in separators.iter().enumerate() {
            let mut value = Vec::new();
            BlockHandle {
                offset: i as u64 * 100,
                size: 90,
            }
            .encode_varint(&mut value);
            builder.add(key, &value);
        }
        BlockIndex::decode(Bytes::copy_from_slice(builder.finish()), u64::MAX, false).unwrap()
    }

    /// The first separator `>= target`, by a linear scan.
    fn expected(separators: &[Vec<u8>], target: &[u8]) -> usize {
        separators
            .iter()
            .position(|s| compare_internal_keys(s, target) != Ordering::Less)
            .unwrap_or(separators.len())
    }

    #[test]
    fn find_agrees_with_a_linear_scan() {
        // A long shared prefix, runs of equal windows, prefixes of other
        // keys, several versions of one user key.
        let mut separators = vec![ik(b"user:0000", 9), ik(b"user:0000", 3)];
        for i in 0..40u32 {
            separators.push(ik(format!("user:0000{i:02}").as_bytes(), 5));
        }
        for i in 0..30u32 {
            separators.push(ik(format!("user:00010000000000{i:02}").as_bytes(), 5));
        }
        separators.push(ik(b"user:1", 1));
        separators.push(ik(b"user:\xff\xff\xff\xff\xff\xff\xff\xff\xff", 1));
        // As the writer ends a table: the short successor of the last key.
        separators.push(ik(b"v", 1));
        separators.sort_by(|a, b| compare_internal_keys(a, b));
        let index = index_of(&separators);
        assert_eq!(index.prefix_len, b"user:".len());
        assert_eq!(index.prefixed, separators.len() - 1);
        let mut targets: Vec<Vec<u8>> = Vec::new();
        for s in &separators {
            let user = &s[..s.len() - TRAILER_BYTES];
            for seqno in [0, 3, 4, 5, 9, 10] {
                targets.push(ik(user, seqno));
            }
            let mut longer = user.to_vec();
            longer.push(0);
            targets.push(ik(&longer, 7));
            targets.push(ik(&user[..user.len() - 1], 7));
        }
        for user in [
            &b""[..],
            b"a",
            b"user",
            b"user:",
            b"user;",
            b"v",
            b"v\0",
            b"zzz",
        ] {
            targets.push(ik(user, 1));
        }
        for target in &targets {
            assert_eq!(
                index.find_key(target),
                expected(&separators, target),
                "target {target:?}"
            );
        }
    }

    /// An index block with the given separators in the given order
    /// (written by hand: the builder asserts the order in tests).
    fn raw_index(separators: &[&[u8]]) -> Bytes {
        let (mut bytes, mut restarts) = (Vec::new(), Vec::new());
        for key in separators {
            restarts.push(bytes.len() as u32);
            let mut value = Vec::new();
            BlockHandle { offset: 0, size: 1 }.encode_varint(&mut value);
            bytes.extend_from_slice(&[0, key.len() as u8, value.len() as u8]);
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(&value);
        }
        for restart in &restarts {
            bytes.extend_from_slice(&restart.to_le_bytes());
        }
        bytes.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        Bytes::from(bytes)
    }

    #[test]
    fn damaged_indexes_are_rejected() {
        let (a, b) = (ik(b"a", 1), ik(b"b", 1));
        let decode = |block, data_end| BlockIndex::decode(block, data_end, false);
        assert!(decode(raw_index(&[&a, &b]), u64::MAX).is_ok());
        assert!(decode(raw_index(&[&b, &a]), u64::MAX).is_err());
        assert!(decode(raw_index(&[&a, &a]), u64::MAX).is_err());
        assert!(decode(raw_index(&[b"short"]), u64::MAX).is_err());
        // The handle (0, 1) needs 1 + 9 trailer bytes of data.
        assert!(decode(raw_index(&[&a]), 9).is_err());
        assert!(decode(raw_index(&[&a]), 10).is_ok());
    }

    #[test]
    fn an_empty_index_is_accepted_only_for_a_table_without_data_blocks() {
        let empty = Bytes::from_static(&EMPTY_BLOCK);
        let index = BlockIndex::decode(empty.clone(), 0, true).unwrap();
        assert!(index.is_empty());
        assert_eq!(index.find(b"anything", 0), 0);
        assert_eq!(index.find_key(b""), 0);
        assert!(BlockIndex::decode(empty, 0, false).is_err());
        let a = ik(b"a", 1);
        assert!(BlockIndex::decode(raw_index(&[&a]), u64::MAX, true).is_err());
    }
}

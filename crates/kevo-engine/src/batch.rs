//! [`WriteBatch`]: puts and deletes applied atomically.

use std::ops::RangeBounds;

use kevo_core::DEFAULT_KEYSPACE;

use crate::keyspace_handle::Keyspace;

/// Puts and deletes applied atomically by [`Db::write`](crate::Db::write):
/// after a crash either all of them are present or none.
///
/// ```
/// use kevo_engine::WriteBatch;
///
/// let mut batch = WriteBatch::new();
/// batch.put("apple", "red");
/// batch.delete("banana");
/// assert_eq!(batch.len(), 2);
/// ```
///
/// Limits (checked by `write`, which refuses the whole batch with
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument)): keys up to
/// [`KEY_BYTES_MAX`](crate::KEY_BYTES_MAX) bytes, values up to
/// [`VALUE_BYTES_MAX`](crate::VALUE_BYTES_MAX), the encoded batch up to
/// [`BATCH_BYTES_MAX`](crate::BATCH_BYTES_MAX).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) inner: kevo_wal::Batch,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `key` = `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.inner.put(key, value);
    }

    /// Adds a put of `key` to `value` in `keyspace`. One batch may write
    /// to any number of keyspaces of its database, atomically.
    pub fn put_in(&mut self, keyspace: &Keyspace, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.inner.put_in(keyspace.core.id, key, value);
    }

    /// Adds a delete of `key` in `keyspace`.
    pub fn delete_in(&mut self, keyspace: &Keyspace, key: impl AsRef<[u8]>) {
        self.inner.delete_in(keyspace.core.id, key);
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.inner.delete(key);
    }

    /// Adds a delete of every key in `range` (any [`RangeBounds`] of keys,
    /// as for [`Db::range`](crate::Db::range)): one range tombstone,
    /// written and applied in constant time whatever the number of keys it
    /// covers, atomic with the batch's other writes. Reads skip the keys it
    /// covers; compaction reclaims their space.
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) {
        crate::span::push_range_delete(&mut self.inner, DEFAULT_KEYSPACE, &range);
    }

    /// [`WriteBatch::delete_range`] in `keyspace`.
    pub fn delete_range_in<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        keyspace: &Keyspace,
        range: R,
    ) {
        crate::span::push_range_delete(&mut self.inner, keyspace.core.id, &range);
    }

    /// Adds a delete of every key that starts with `prefix` (a range delete
    /// of the prefix's keys).
    pub fn delete_prefix(&mut self, prefix: impl AsRef<[u8]>) {
        crate::span::push_prefix_delete(&mut self.inner, DEFAULT_KEYSPACE, prefix.as_ref());
    }

    /// [`WriteBatch::delete_prefix`] in `keyspace`.
    pub fn delete_prefix_in(&mut self, keyspace: &Keyspace, prefix: impl AsRef<[u8]>) {
        crate::span::push_prefix_delete(&mut self.inner, keyspace.core.id, prefix.as_ref());
    }

    /// Number of puts, deletes and range deletes (a range delete counts
    /// once, or twice when its range runs to the end of the key space).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes every entry, keeping the allocation.
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// Encoded size in bytes (what the WAL record will carry).
    pub fn encoded_bytes(&self) -> usize {
        self.inner.as_bytes().len()
    }
}

//! [`WriteBatch`]: puts and deletes applied atomically.

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

    /// Number of puts and deletes.
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

//! [`Batch`]: the unit the log stores and replays all-or-nothing.
//!
//! ```text
//! batch   = seqno u64 LE | count u32 LE | entry * count
//! entry   = kind u8 | key_len varint32 | key | (Put only) value_len varint32 | value
//! ```
//!
//! Entry `i` of a batch has sequence number `seqno + i`.

use kevo_core::{
    KEY_BYTES_MAX, Reader, SEQNO_MAX, SeqNo, VALUE_BYTES_MAX, ValueKind, put_varint32,
};

use crate::format::BATCH_BYTES_MAX;

/// Bytes in a batch's header: seqno (8) and entry count (4).
pub const BATCH_HEADER_BYTES: usize = 12;

/// An ordered list of puts and deletes applied atomically.
///
/// Building a batch never fails; limits (key and value sizes, total size) are
/// checked when it is appended to the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    rep: Vec<u8>,
    count: u32,
    oversized: bool,
}

/// One entry of a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    /// Put or delete.
    pub kind: ValueKind,
    /// The user key.
    pub key: &'a [u8],
    /// The value (empty for deletes).
    pub value: &'a [u8],
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch with sequence number 0.
    pub fn new() -> Self {
        Batch {
            rep: vec![0; BATCH_HEADER_BYTES],
            count: 0,
            oversized: false,
        }
    }

    /// Adds a put of `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.push(ValueKind::Put, key);
        self.push_bytes(value, VALUE_BYTES_MAX);
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(ValueKind::Delete, key.as_ref());
    }

    fn push(&mut self, kind: ValueKind, key: &[u8]) {
        self.count = self.count.saturating_add(1);
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.rep.push(kind as u8);
        self.push_bytes(key, KEY_BYTES_MAX);
    }

    fn push_bytes(&mut self, bytes: &[u8], max: usize) {
        match u32::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= max => {
                put_varint32(&mut self.rep, len);
                self.rep.extend_from_slice(bytes);
            }
            _ => {
                // Keep the encoding well-formed but remember the batch is unusable.
                self.oversized = true;
                put_varint32(&mut self.rep, 0);
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sequence number of the first entry.
    pub fn seqno(&self) -> SeqNo {
        let mut r = Reader::new(&self.rep);
        r.u64_le().unwrap_or(0)
    }

    /// Sets the sequence number of the first entry.
    pub fn set_seqno(&mut self, seqno: SeqNo) {
        self.rep[0..8].copy_from_slice(&seqno.to_le_bytes());
    }

    /// Removes every entry (keeping the allocation) and resets the seqno.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.resize(BATCH_HEADER_BYTES, 0);
        self.count = 0;
        self.oversized = false;
    }

    /// Appends every entry of `other` after this batch's entries (the group
    /// leader merges waiting batches this way).
    pub fn extend(&mut self, other: &Batch) {
        self.count = self.count.saturating_add(other.count);
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.rep.extend_from_slice(&other.rep[BATCH_HEADER_BYTES..]);
        self.oversized |= other.oversized;
    }

    /// The encoded batch, as stored in the log.
    pub fn as_bytes(&self) -> &[u8] {
        &self.rep
    }

    /// Checks the limits: no key over [`KEY_BYTES_MAX`], no value over
    /// [`VALUE_BYTES_MAX`], the whole batch within [`BATCH_BYTES_MAX`].
    ///
    /// # Errors
    /// A description of the first limit broken.
    pub fn check_limits(&self) -> Result<(), String> {
        if self.oversized {
            return Err(format!(
                "a key is longer than {KEY_BYTES_MAX} bytes or a value longer than {VALUE_BYTES_MAX} bytes"
            ));
        }
        if self.rep.len() > BATCH_BYTES_MAX {
            return Err(format!(
                "batch of {} bytes exceeds the maximum of {BATCH_BYTES_MAX} bytes",
                self.rep.len()
            ));
        }
        if self.count == u32::MAX {
            return Err("batch has too many entries".to_string());
        }
        check_seqnos(self.seqno(), self.count)
    }

    /// The sequence number of the last entry (the first one's for an empty
    /// batch).
    pub fn last_seqno(&self) -> SeqNo {
        self.seqno()
            .saturating_add(u64::from(self.count).saturating_sub(1))
    }

    /// The entries in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            reader: Reader::new(&self.rep[BATCH_HEADER_BYTES..]),
            left: self.count,
        }
    }

    /// Decodes and fully validates an encoded batch.
    ///
    /// # Errors
    /// A description of the first defect: truncation, an unknown kind, a
    /// length over its maximum, a count that does not match, trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
        if bytes.len() > BATCH_BYTES_MAX {
            return Err(format!(
                "batch of {} bytes exceeds the maximum",
                bytes.len()
            ));
        }
        let mut r = Reader::new(bytes);
        let seqno = r.u64_le().ok_or("batch header is truncated")?;
        let count = r.u32_le().ok_or("batch header is truncated")?;
        check_seqnos(seqno, count)?;
        for i in 0..count {
            let tag = r.u8().ok_or_else(|| format!("entry {i} is truncated"))?;
            let kind = ValueKind::from_u8(tag)
                .ok_or_else(|| format!("entry {i} has unknown kind {tag}"))?;
            r.length_prefixed(KEY_BYTES_MAX)
                .ok_or_else(|| format!("entry {i} has a truncated or oversized key"))?;
            if kind == ValueKind::Put {
                r.length_prefixed(VALUE_BYTES_MAX)
                    .ok_or_else(|| format!("entry {i} has a truncated or oversized value"))?;
            }
        }
        if !r.is_empty() {
            return Err(format!(
                "{} bytes follow the last of {count} entries",
                r.remaining()
            ));
        }
        Ok(Batch {
            rep: bytes.to_vec(),
            count,
            oversized: false,
        })
    }
}

/// Every entry's seqno must fit in the 56 bits of a key trailer.
fn check_seqnos(first: SeqNo, count: u32) -> Result<(), String> {
    let last = first.checked_add(u64::from(count.saturating_sub(1)));
    match last {
        Some(last) if last <= SEQNO_MAX => Ok(()),
        _ => Err(format!(
            "seqnos {first}.. of {count} entries exceed the maximum {SEQNO_MAX}"
        )),
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("seqno", &self.seqno())
            .field("count", &self.count)
            .field("bytes", &self.rep.len())
            .finish()
    }
}

/// Iterator over a batch's entries, from [`Batch::iter`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchEntry<'a>;

    fn next(&mut self) -> Option<BatchEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        // A batch is well-formed by construction (built by `put`/`delete` or
        // validated by `decode`), so these reads cannot fail; stop if they do.
        let kind = ValueKind::from_u8(self.reader.u8()?)?;
        let key = self.reader.length_prefixed(KEY_BYTES_MAX)?;
        let value = match kind {
            ValueKind::Put => self.reader.length_prefixed(VALUE_BYTES_MAX)?,
            ValueKind::Delete => &[],
        };
        self.left -= 1;
        Some(BatchEntry { kind, key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batch_round_trips_through_its_encoding() {
        let mut batch = Batch::new();
        batch.put(b"k1", b"v1");
        batch.delete(b"k2");
        batch.put(b"", b"");
        batch.set_seqno(77);
        let decoded = Batch::decode(batch.as_bytes()).unwrap();
        assert_eq!(decoded, batch);
        assert_eq!(decoded.seqno(), 77);
        let entries: Vec<_> = decoded.iter().collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1],
            BatchEntry {
                kind: ValueKind::Delete,
                key: b"k2",
                value: b""
            }
        );
    }

    #[test]
    fn extend_appends_entries_and_counts() {
        let mut a = Batch::new();
        a.put("a", "1");
        let mut b = Batch::new();
        b.delete("b");
        b.put("c", "3");
        a.extend(&b);
        assert_eq!(a.len(), 3);
        let keys: Vec<_> = a.iter().map(|e| e.key.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(Batch::decode(a.as_bytes()).is_ok());
    }

    #[test]
    fn oversized_key_fails_the_limit_check() {
        let mut batch = Batch::new();
        batch.put(vec![0u8; KEY_BYTES_MAX + 1], b"v");
        assert!(batch.check_limits().is_err());
        batch.clear();
        assert!(batch.check_limits().is_ok());
    }

    #[test]
    fn seqnos_past_56_bits_are_rejected() {
        let mut batch = Batch::new();
        batch.put("a", "1");
        batch.put("b", "2");
        batch.set_seqno(SEQNO_MAX);
        assert!(batch.check_limits().is_err());
        assert!(Batch::decode(batch.as_bytes()).is_err());
        batch.set_seqno(u64::MAX);
        assert!(batch.check_limits().is_err());
        batch.set_seqno(SEQNO_MAX - 1);
        assert!(batch.check_limits().is_ok());
        assert_eq!(batch.last_seqno(), SEQNO_MAX);
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_bad_counts() {
        let mut batch = Batch::new();
        batch.put("k", "v");
        let mut bytes = batch.as_bytes().to_vec();
        bytes.push(0);
        assert!(Batch::decode(&bytes).is_err());
        let mut wrong_count = batch.as_bytes().to_vec();
        wrong_count[8] = 2;
        assert!(Batch::decode(&wrong_count).is_err());
        assert!(Batch::decode(&batch.as_bytes()[..5]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_what_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(batch) = Batch::decode(&bytes) {
                let mut rebuilt = Batch::new();
                for e in batch.iter() {
                    match e.kind {
                        ValueKind::Put => rebuilt.put(e.key, e.value),
                        ValueKind::Delete => rebuilt.delete(e.key),
                    }
                }
                // Same entries (the input may use non-canonical varints).
                prop_assert_eq!(rebuilt.iter().collect::<Vec<_>>(), batch.iter().collect::<Vec<_>>());
                prop_assert_eq!(rebuilt.len(), batch.len());
            }
        }
    }
}

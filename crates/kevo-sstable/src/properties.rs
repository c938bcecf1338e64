//! The properties block: what a table holds, recorded by the writer.
//! No I/O here. Fields, in order (layout fixed by the format version):
//!
//! ```text
//! entry_count, tombstone_count, raw_key_bytes, raw_value_bytes,
//! smallest_seqno, largest_seqno, creation_time_unix_s,
//! data_block_count, index_entry_count                     varint64 each
//! compression                                              u8
//! block_bytes_target, restart_interval, bloom_bits_per_key varint32 each
//! format_version                                           u32 LE
//! smallest_key, largest_key            varint32 length + internal key each
//! -- version 2 on --
//! range_tombstone_count                                    varint64
//! range_tombstones (block handle)          offset varint64, size varint64
//! ```

use kevo_core::{InternalKey, Reader, SeqNo, put_varint32, put_varint64};

use crate::format::{
    BlockHandle, Compression, FORMAT_VERSION_RANGE_TOMBSTONES, INTERNAL_KEY_BYTES_MAX,
};

/// What a table holds, as recorded in its properties block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    /// Point entries (puts and tombstones) in the data blocks; 0 only in a
    /// table that holds range tombstones alone.
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Sum of the internal keys' lengths (user key + 8).
    pub raw_key_bytes: u64,
    /// Sum of the values' lengths.
    pub raw_value_bytes: u64,
    /// Smallest seqno of any entry or range tombstone.
    pub smallest_seqno: SeqNo,
    /// Largest seqno of any entry or range tombstone.
    pub largest_seqno: SeqNo,
    /// When the writer was created, seconds since the Unix epoch.
    pub creation_time_unix_s: u64,
    /// Data blocks.
    pub data_block_count: u64,
    /// Entries in the index block (one per data block in a single-level index).
    pub index_entry_count: u64,
    /// The compression the writer was asked for (a block may still be
    /// stored uncompressed; see its trailer).
    pub compression: Compression,
    /// Target size of a data block.
    pub block_bytes_target: u32,
    /// Entries between restart points in data blocks.
    pub restart_interval: u32,
    /// Bloom filter bits per key; 0 when the table has no filter.
    pub bloom_bits_per_key: u32,
    /// The format version the table was written in.
    pub format_version: u32,
    /// The smallest internal key of the table: of its first point entry and
    /// of its first range tombstone (`start` with the trailer
    /// `(seqno, RANGE_DELETE_KIND)`), the smaller.
    pub smallest_key: InternalKey,
    /// The largest internal key of the table: of its last point entry and
    /// of the end of its last range-tombstone fragment (`end` with the
    /// trailer `(SEQNO_MAX, RANGE_DELETE_KIND)`, which sorts before every
    /// real entry of `end`: the end is exclusive), the larger.
    pub largest_key: InternalKey,
    /// Range tombstones in the range-tombstone block: one per (fragment,
    /// seqno). Always 0 in version 1.
    pub range_tombstone_count: u64,
    /// The range-tombstone block; `(0, 0)` when there is none (always in
    /// version 1).
    pub range_tombstones: BlockHandle,
}

impl Properties {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        for value in [
            self.entry_count,
            self.tombstone_count,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.smallest_seqno,
            self.largest_seqno,
            self.creation_time_unix_s,
            self.data_block_count,
            self.index_entry_count,
        ] {
            put_varint64(&mut buf, value);
        }
        buf.push(self.compression as u8);
        for value in [
            self.block_bytes_target,
            self.restart_interval,
            self.bloom_bits_per_key,
        ] {
            put_varint32(&mut buf, value);
        }
        buf.extend_from_slice(&self.format_version.to_le_bytes());
        for key in [&self.smallest_key, &self.largest_key] {
            put_varint32(&mut buf, key.as_bytes().len() as u32);
            buf.extend_from_slice(key.as_bytes());
        }
        if self.format_version >= FORMAT_VERSION_RANGE_TOMBSTONES {
            put_varint64(&mut buf, self.range_tombstone_count);
            self.range_tombstones.encode_varint(&mut buf);
        } else {
            debug_assert_eq!(self.range_tombstone_count, 0);
            debug_assert_eq!(self.range_tombstones, BlockHandle::default());
        }
        buf
    }

    /// Decodes a properties block in the layout of `format_version` (the
    /// footer's, which the block's own `format_version` field must repeat);
    /// every byte must be used.
    pub(crate) fn decode(bytes: &[u8], format_version: u32) -> Result<Properties, &'static str> {
        let mut r = Reader::new(bytes);
        let short = "properties block is truncated";
        let mut counts = [0u64; 9];
        for count in &mut counts {
            *count = r.varint64().ok_or(short)?;
        }
        let [
            entry_count,
            tombstone_count,
            raw_key_bytes,
            raw_value_bytes,
            smallest_seqno,
            largest_seqno,
            creation_time_unix_s,
            data_block_count,
            index_entry_count,
        ] = counts;
        let compression =
            Compression::from_u8(r.u8().ok_or(short)?).ok_or("unknown compression type")?;
        let block_bytes_target = r.varint32().ok_or(short)?;
        let restart_interval = r.varint32().ok_or(short)?;
        let bloom_bits_per_key = r.varint32().ok_or(short)?;
        if r.u32_le().ok_or(short)? != format_version {
            return Err("properties and footer disagree on the format version");
        }
        let mut key = || {
            let bytes = r.length_prefixed(INTERNAL_KEY_BYTES_MAX).ok_or(short)?;
            InternalKey::from_encoded(bytes.to_vec()).ok_or("key shorter than its trailer")
        };
        let smallest_key = key()?;
        let largest_key = key()?;
        let (range_tombstone_count, range_tombstones) =
            if format_version >= FORMAT_VERSION_RANGE_TOMBSTONES {
                let count = r.varint64().ok_or(short)?;
                let handle = BlockHandle {
                    offset: r.varint64().ok_or(short)?,
                    size: r.varint64().ok_or(short)?,
                };
                (count, handle)
            } else {
                (0, BlockHandle::default())
            };
        if !r.is_empty() {
            return Err("bytes after the last property");
        }
        if (range_tombstone_count > 0) != (range_tombstones != BlockHandle::default()) {
            return Err("range tombstone count and block disagree");
        }
        // Without point entries there is no data block and no index entry,
        // and the table must hold range tombstones.
        let empty = entry_count == 0;
        if empty && (range_tombstone_count == 0 || data_block_count != 0 || index_entry_count != 0)
        {
            return Err(
                "a table without point entries holds no range tombstone or has data blocks",
            );
        }
        if tombstone_count > entry_count || smallest_seqno > largest_seqno {
            return Err("inconsistent counts or seqnos");
        }
        if smallest_key > largest_key {
            return Err("smallest key sorts after largest key");
        }
        Ok(Properties {
            entry_count,
            tombstone_count,
            raw_key_bytes,
            raw_value_bytes,
            smallest_seqno,
            largest_seqno,
            creation_time_unix_s,
            data_block_count,
            index_entry_count,
            compression,
            block_bytes_target,
            restart_interval,
            bloom_bits_per_key,
            format_version,
            smallest_key,
            largest_key,
            range_tombstone_count,
            range_tombstones,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{RANGE_DELETE_KIND, SEQNO_MAX, ValueKind};

    fn v1() -> Properties {
        Properties {
            entry_count: 2,
            tombstone_count: 1,
            raw_key_bytes: 27,
            raw_value_bytes: 3,
            smallest_seqno: 1,
            largest_seqno: 2,
            creation_time_unix_s: 1_700_000_000,
            data_block_count: 1,
            index_entry_count: 1,
            compression: Compression::None,
            block_bytes_target: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            format_version: 1,
            smallest_key: InternalKey::new(b"apple", 2, ValueKind::Put),
            largest_key: InternalKey::new(b"banana", 1, ValueKind::Delete),
            range_tombstone_count: 0,
            range_tombstones: BlockHandle::default(),
        }
    }

    fn ik(user_key: &[u8], seqno: SeqNo, kind: u8) -> InternalKey {
        let mut encoded = Vec::new();
        kevo_core::encode_internal_key(&mut encoded, user_key, seqno, kind);
        InternalKey::from_encoded(encoded).unwrap()
    }

    /// A table of range tombstones alone.
    fn v2_tombstones_only() -> Properties {
        Properties {
            entry_count: 0,
            tombstone_count: 0,
            raw_key_bytes: 0,
            raw_value_bytes: 0,
            data_block_count: 0,
            index_entry_count: 0,
            format_version: 2,
            smallest_key: ik(b"a", 7, RANGE_DELETE_KIND),
            largest_key: ik(b"c", SEQNO_MAX, RANGE_DELETE_KIND),
            range_tombstone_count: 3,
            range_tombstones: BlockHandle {
                offset: 0,
                size: 40,
            },
            ..v1()
        }
    }

    #[test]
    fn both_layouts_round_trip() {
        for p in [v1(), v2_tombstones_only()] {
            let encoded = p.encode();
            assert_eq!(Properties::decode(&encoded, p.format_version), Ok(p));
        }
    }

    #[test]
    fn version_1_layout_has_no_range_tombstone_fields() {
        let p = v1();
        let v2 = Properties {
            format_version: 2,
            ..p.clone()
        };
        // Version 2 appends a count and a handle: three one-byte varints here.
        assert_eq!(v2.encode().len(), p.encode().len() + 3);
        // Read with the other version, neither decodes.
        assert!(Properties::decode(&p.encode(), 2).is_err());
        assert!(Properties::decode(&v2.encode(), 1).is_err());
    }

    #[test]
    fn inconsistent_range_tombstone_fields_are_refused() {
        let cases = [
            Properties {
                range_tombstone_count: 0,
                ..v2_tombstones_only()
            },
            Properties {
                range_tombstones: BlockHandle::default(),
                ..v2_tombstones_only()
            },
            Properties {
                data_block_count: 1,
                ..v2_tombstones_only()
            },
            Properties {
                index_entry_count: 1,
                ..v2_tombstones_only()
            },
            Properties {
                entry_count: 0,
                tombstone_count: 0,
                ..v1()
            },
        ];
        for p in cases {
            assert!(
                Properties::decode(&p.encode_unchecked(), p.format_version).is_err(),
                "{p:?}"
            );
        }
    }

    impl Properties {
        /// [`Properties::encode`] without its debug assertions.
        fn encode_unchecked(&self) -> Vec<u8> {
            if self.format_version >= FORMAT_VERSION_RANGE_TOMBSTONES {
                return self.encode();
            }
            Properties {
                range_tombstone_count: 0,
                range_tombstones: BlockHandle::default(),
                ..self.clone()
            }
            .encode()
        }
    }
}

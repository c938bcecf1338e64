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
//! ```

use kevo_core::{InternalKey, Reader, SeqNo, put_varint32, put_varint64};

use crate::format::{Compression, INTERNAL_KEY_BYTES_MAX};

/// What a table holds, as recorded in its properties block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    /// Entries (puts and tombstones).
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Sum of the internal keys' lengths (user key + 8).
    pub raw_key_bytes: u64,
    /// Sum of the values' lengths.
    pub raw_value_bytes: u64,
    /// Smallest seqno of any entry.
    pub smallest_seqno: SeqNo,
    /// Largest seqno of any entry.
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
    /// The first internal key.
    pub smallest_key: InternalKey,
    /// The last internal key.
    pub largest_key: InternalKey,
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
        buf
    }

    /// Decodes a properties block; every byte must be used.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Properties, &'static str> {
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
        let format_version = r.u32_le().ok_or(short)?;
        let mut key = || {
            let bytes = r.length_prefixed(INTERNAL_KEY_BYTES_MAX).ok_or(short)?;
            InternalKey::from_encoded(bytes.to_vec()).ok_or("key shorter than its trailer")
        };
        let smallest_key = key()?;
        let largest_key = key()?;
        if !r.is_empty() {
            return Err("bytes after the last property");
        }
        if entry_count == 0 || tombstone_count > entry_count || smallest_seqno > largest_seqno {
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
        })
    }
}

//! [`ChunkArena`]: small byte strings copied into shared chunks.

use bytes::{Bytes, BytesMut};

/// Copies small byte strings side by side into chunks of a fixed size that
/// the returned [`Bytes`] share (reference counted; a chunk is freed with
/// the last `Bytes` in it): one allocation per chunk instead of one per
/// string. A string longer than `entry_max` gets a buffer of its own, so a
/// kept string never holds much more than itself and a chunk is never
/// mostly wasted by a string that did not fit at its end.
///
/// The memtable carves its entries from one (64 KiB chunks), and the range
/// iterator the keys and values it yields (4 KiB chunks).
#[derive(Debug)]
pub struct ChunkArena {
    chunk: BytesMut,
    chunk_bytes: usize,
    entry_max: usize,
}

impl ChunkArena {
    /// An arena of `chunk_bytes` chunks, sharing them among strings of at
    /// most `entry_max` bytes (clamped to `chunk_bytes`).
    pub fn new(chunk_bytes: usize, entry_max: usize) -> Self {
        ChunkArena {
            chunk: BytesMut::new(),
            chunk_bytes,
            entry_max: entry_max.min(chunk_bytes),
        }
    }

    /// `parts`, concatenated into one buffer of exactly their length.
    pub fn copy(&mut self, parts: &[&[u8]]) -> Bytes {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.entry_max {
            let mut buf = Vec::with_capacity(len);
            for part in parts {
                buf.extend_from_slice(part);
            }
            // `len == capacity`: `Bytes` takes the allocation over as is.
            return Bytes::from(buf);
        }
        if self.chunk.capacity() - self.chunk.len() < len {
            self.chunk = BytesMut::with_capacity(self.chunk_bytes);
        }
        for part in parts {
            self.chunk.extend_from_slice(part);
        }
        self.chunk.split().freeze()
    }
}

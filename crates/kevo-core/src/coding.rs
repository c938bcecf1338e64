//! Varints and little-endian fixed-width integers.
//!
//! Varints are LEB128: seven bits per byte, least significant group first,
//! the high bit set on every byte but the last. A `u32` takes at most 5
//! bytes, a `u64` at most 10. Decoders reject overlong encodings that would
//! overflow the type, and never read past the slice they are given.
//!
//! [`Reader`] is the bounds-checked cursor every decoder in kevo is built on:
//! each read returns `None` instead of panicking when the input is short.

/// Most bytes a varint-encoded `u32` takes.
pub const VARINT32_BYTES_MAX: usize = 5;
/// Most bytes a varint-encoded `u64` takes.
pub const VARINT64_BYTES_MAX: usize = 10;

/// Appends `value` as a varint.
pub fn put_varint64(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends `value` as a varint.
pub fn put_varint32(buf: &mut Vec<u8>, value: u32) {
    put_varint64(buf, u64::from(value));
}

/// Bytes `value` takes as a varint.
pub fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Decodes a varint `u64` from the start of `input`; returns the value and
/// the bytes it took, or `None` if the input is truncated or overflows.
pub fn get_varint64(input: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().take(VARINT64_BYTES_MAX).enumerate() {
        let bits = u64::from(byte & 0x7F);
        let shift = 7 * i as u32;
        // The 10th byte may only carry the single top bit.
        if i == VARINT64_BYTES_MAX - 1 && byte > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a varint `u32`; `None` if truncated or larger than `u32::MAX`.
pub fn get_varint32(input: &[u8]) -> Option<(u32, usize)> {
    let (value, len) = get_varint64(&input[..input.len().min(VARINT32_BYTES_MAX)])?;
    Some((u32::try_from(value).ok()?, len))
}

/// A bounds-checked reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.input.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16_le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A varint `u32`.
    pub fn varint32(&mut self) -> Option<u32> {
        let (value, len) = get_varint32(&self.input[self.pos..])?;
        self.pos += len;
        Some(value)
    }

    /// A varint `u64`.
    pub fn varint64(&mut self) -> Option<u64> {
        let (value, len) = get_varint64(&self.input[self.pos..])?;
        self.pos += len;
        Some(value)
    }

    /// A varint length (at most `max`) followed by that many bytes.
    pub fn length_prefixed(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint32()?).ok()?;
        if len > max {
            return None;
        }
        self.bytes(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_boundaries_round_trip() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint64(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            assert_eq!(get_varint64(&buf), Some((value, buf.len())));
        }
        assert_eq!(varint_len(u64::MAX), VARINT64_BYTES_MAX);
    }

    #[test]
    fn truncated_varint_is_none() {
        let mut buf = Vec::new();
        put_varint64(&mut buf, 300);
        assert_eq!(get_varint64(&buf[..1]), None);
        assert_eq!(get_varint64(&[]), None);
    }

    #[test]
    fn overflowing_varint_is_none() {
        assert_eq!(get_varint64(&[0xFF; 10]), None);
        assert_eq!(
            get_varint64(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
            None
        );
        let mut big = Vec::new();
        put_varint64(&mut big, u64::from(u32::MAX) + 1);
        assert_eq!(get_varint32(&big), None);
    }

    #[test]
    fn reader_refuses_to_run_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_le(), Some(0x0201));
        assert_eq!(r.u16_le(), None);
        assert_eq!(r.u8(), Some(3));
        assert!(r.is_empty());
        assert_eq!(r.bytes(usize::MAX), None);
    }

    #[test]
    fn length_prefixed_respects_its_maximum() {
        let mut buf = Vec::new();
        put_varint32(&mut buf, 4);
        buf.extend_from_slice(b"abcd");
        assert_eq!(Reader::new(&buf).length_prefixed(3), None);
        assert_eq!(Reader::new(&buf).length_prefixed(4), Some(&b"abcd"[..]));
    }

    proptest! {
        #[test]
        fn any_u64_round_trips(value: u64) {
            let mut buf = Vec::new();
            put_varint64(&mut buf, value);
            prop_assert_eq!(get_varint64(&buf), Some((value, buf.len())));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Some((value, len)) = get_varint64(&bytes) {
                prop_assert!(len <= VARINT64_BYTES_MAX);
                let mut buf = Vec::new();
                put_varint64(&mut buf, value);
                // Decoding is exact for canonical encodings.
                prop_assert!(buf.len() <= len);
            }
            let _ = get_varint32(&bytes);
        }
    }
}

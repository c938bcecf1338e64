//! Checksums used by kevo's file formats.
//!
//! - CRC-32 (IEEE polynomial, via `crc32fast`, hardware accelerated) guards
//!   WAL records and small headers;
//! - xxHash3-64 (via `xxhash-rust`) guards table blocks and feeds filters.
//!
//! Both are computed over several slices without concatenating them.

/// CRC-32 (IEEE) of the concatenation of `parts`.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// xxHash3-64 of `data`.
pub fn xxh3_64(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32/ISO-HDLC check value for "123456789".
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
    }

    #[test]
    fn crc32_over_parts_equals_crc32_over_concatenation() {
        assert_eq!(crc32(&[b"1234", b"", b"56789"]), crc32(&[b"123456789"]));
    }

    #[test]
    fn xxh3_is_stable() {
        // Pinned so that a dependency change cannot silently change formats.
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }
}

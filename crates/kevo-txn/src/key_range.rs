//! Key ranges given as a pair of [`Bound`]s, and the one question every
//! user of them asks first: can the range hold any key at all?
//!
//! `BTreeMap::range` panics on a range whose start lies after its end (or
//! that excludes the same key at both ends), so callers test
//! [`range_is_empty`] first and treat such a range as empty.

use std::ops::Bound;

/// Whether no key can lie in `[start, end)` as the bounds describe it.
pub(crate) fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
    }
}

/// Borrows a `Bound<Bytes>`-like bound as `Bound<&[u8]>`.
pub(crate) fn as_slice_bound<T: AsRef<[u8]>>(bound: &Bound<T>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    #[test]
    fn inverted_or_degenerate_ranges_are_empty() {
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(range_is_empty(Included(b), Included(a)));
        assert!(range_is_empty(Included(a), Excluded(a)));
        assert!(range_is_empty(Excluded(a), Included(a)));
        assert!(range_is_empty(Excluded(a), Excluded(a)));
        assert!(!range_is_empty(Included(a), Included(a)));
        assert!(!range_is_empty(Excluded(a), Excluded(b)));
        assert!(!range_is_empty(Unbounded, Excluded(a)));
        assert!(!range_is_empty(Included(b), Unbounded));
    }
}

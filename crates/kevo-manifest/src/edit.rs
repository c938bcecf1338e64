//! [`VersionEdit`]: one change to the version set, and its encoding (one
//! manifest record).
//!
//! See `docs/format/manifest.md` for the byte tables and a worked example.
//!
//! ```text
//! edit  = format version u8 (= 2; 1 is still read) | field*
//! field = tag u8 | body
//!   1 log number        varint64
//!   2 next file number  varint64
//!   3 last seqno        varint64 (<= SEQNO_MAX)
//!   4 removed table     level u8 | number varint64
//!   5 added table       level u8 | number varint64 | file size varint64
//!                       | smallest key (varint32 length, bytes) | largest key (same)
//!                       | smallest seqno varint64 | largest seqno varint64
//!                       | entries varint64 | tombstones varint64
//!   6 WAL segment added   number varint64                      (format 2 only)
//!   7 WAL segment sealed  number varint64 | bytes varint64     (format 2 only)
//!   8 unexplained table   number varint64                      (format 2 only)
//! ```
//!
//! Tags 1 to 3 appear at most once each. An unknown tag, a WAL tag in a
//! format 1 edit, a level past [`NUM_LEVELS`], a key that is not an
//! internal key or is longer than [`KEY_BYTES_MAX`] plus the trailer, a
//! seqno past [`SEQNO_MAX`] or trailing bytes make the whole edit
//! undecodable.

use kevo_core::{
    InternalKey, KEY_BYTES_MAX, Reader, SEQNO_MAX, SeqNo, TRAILER_BYTES, put_varint32, put_varint64,
};

use crate::meta::{NUM_LEVELS, TableMeta};

/// The edit encoding this code writes: 2, which added the WAL segment
/// fields (tags 6 and 7) and unexplained tables (tag 8). Decoders also
/// read format 1, the first one.
pub const EDIT_FORMAT_VERSION: u8 = 2;

/// The oldest edit encoding decoders still read: 1 (no WAL segment fields;
/// a manifest of such edits does not track WAL segments).
pub const EDIT_FORMAT_VERSION_MIN: u8 = 1;

/// Largest encoded internal key in an edit.
const ENCODED_KEY_BYTES_MAX: usize = KEY_BYTES_MAX + TRAILER_BYTES;

/// The field tags of an encoded edit. Persisted as one byte; 0 is never
/// valid; retired values are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum FieldTag {
    LogNumber = 1,
    NextFileNumber = 2,
    LastSeqno = 3,
    RemovedTable = 4,
    AddedTable = 5,
    WalAdded = 6,
    WalSealed = 7,
    UnexplainedTable = 8,
}

impl FieldTag {
    fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(FieldTag::LogNumber),
            2 => Some(FieldTag::NextFileNumber),
            3 => Some(FieldTag::LastSeqno),
            4 => Some(FieldTag::RemovedTable),
            5 => Some(FieldTag::AddedTable),
            6 => Some(FieldTag::WalAdded),
            7 => Some(FieldTag::WalSealed),
            8 => Some(FieldTag::UnexplainedTable),
            _ => None,
        }
    }
}

/// One change to the version set: tables added and removed, counters moved.
///
/// [`VersionSet::log_and_apply`](crate::VersionSet::log_and_apply) writes
/// it to the manifest as one record and installs the version it makes. A
/// table moved between levels is removed from one and added to the other in
/// the same edit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// Tables added, with their level.
    pub added: Vec<(usize, TableMeta)>,
    /// Tables removed: `(level, table number)`.
    pub removed: Vec<(usize, u64)>,
    /// The file counter: numbers at or above it were never handed out.
    pub next_file_number: Option<u64>,
    /// The largest sequence number used by any write whose data the tables
    /// (or WAL segments at or above `log_number`) hold.
    pub last_seqno: Option<SeqNo>,
    /// WAL segments numbered below this are no longer needed.
    pub log_number: Option<u64>,
    /// WAL segments started: each is recorded before any record is
    /// written to it (see `docs/format/manifest.md`, *WAL segments*).
    pub wal_segments_added: Vec<u64>,
    /// WAL segments sealed: `(segment, bytes)`, its synced length once no
    /// more records go into it.
    pub wal_segments_sealed: Vec<(u64, u64)>,
    /// Table files in the directory that no version names and that open
    /// could not explain: kevo never deletes them (they are reported until
    /// someone looks at them, or `repair` takes them in). Recorded by a
    /// manifest's snapshot edit, so that a later open still knows them for
    /// what they are.
    pub unexplained_tables: Vec<u64>,
}

impl VersionEdit {
    /// The edit's encoding: a format version byte, then tagged fields (see
    /// `docs/format/manifest.md`).
    ///
    /// ```text
    /// edit  = format version u8 (= 2) | field*
    /// field = tag u8 | body
    ///   1 log number | 2 next file number | 3 last seqno      varint64 each
    ///   4 removed table   level u8 | number varint64
    ///   5 added table     level u8 | number | file size | smallest key | largest key
    ///                     | smallest seqno | largest seqno | entries | tombstones
    ///   6 WAL segment added   number
    ///   7 WAL segment sealed  number | bytes
    ///   8 unexplained table   number
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![EDIT_FORMAT_VERSION];
        let scalars = [
            (FieldTag::LogNumber, self.log_number),
            (FieldTag::NextFileNumber, self.next_file_number),
            (FieldTag::LastSeqno, self.last_seqno),
        ];
        for (tag, value) in scalars {
            if let Some(value) = value {
                out.push(tag as u8);
                put_varint64(&mut out, value);
            }
        }
        for &(level, number) in &self.removed {
            out.push(FieldTag::RemovedTable as u8);
            out.push(level_byte(level));
            put_varint64(&mut out, number);
        }
        for (level, table) in &self.added {
            out.push(FieldTag::AddedTable as u8);
            out.push(level_byte(*level));
            put_varint64(&mut out, table.number);
            put_varint64(&mut out, table.file_size);
            for key in [&table.smallest, &table.largest] {
                let bytes = key.as_bytes();
                put_varint32(&mut out, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(bytes);
            }
            put_varint64(&mut out, table.smallest_seqno);
            put_varint64(&mut out, table.largest_seqno);
            put_varint64(&mut out, table.entries);
            put_varint64(&mut out, table.tombstones);
        }
        for &number in &self.wal_segments_added {
            out.push(FieldTag::WalAdded as u8);
            put_varint64(&mut out, number);
        }
        for &(number, bytes) in &self.wal_segments_sealed {
            out.push(FieldTag::WalSealed as u8);
            put_varint64(&mut out, number);
            put_varint64(&mut out, bytes);
        }
        for &number in &self.unexplained_tables {
            out.push(FieldTag::UnexplainedTable as u8);
            put_varint64(&mut out, number);
        }
        out
    }

    /// Whether the edit changes no table (a counter, WAL segment or
    /// reservation record).
    pub fn changes_no_table(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Decodes an edit written by [`VersionEdit::encode`].
    ///
    /// Never panics, and allocates nothing whose size was read from the
    /// input: every list grows one decoded item at a time and every key is
    /// at most [`KEY_BYTES_MAX`] plus the trailer.
    ///
    /// # Errors
    /// A description of the first thing wrong with `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<VersionEdit, String> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or("empty version edit")?;
        if !(EDIT_FORMAT_VERSION_MIN..=EDIT_FORMAT_VERSION).contains(&version) {
            return Err(format!("unsupported version edit format {version}"));
        }
        let mut edit = VersionEdit::default();
        while !r.is_empty() {
            let at = r.position();
            let raw = r.u8().ok_or("truncated field tag")?;
            let tag = FieldTag::from_u8(raw)
                .filter(|tag| {
                    version >= 2
                        || !matches!(
                            tag,
                            FieldTag::WalAdded | FieldTag::WalSealed | FieldTag::UnexplainedTable
                        )
                })
                .ok_or_else(|| format!("unknown field tag {raw} at byte {at}"))?;
            match tag {
                FieldTag::LogNumber => set_once(&mut edit.log_number, varint(&mut r)?, tag)?,
                FieldTag::NextFileNumber => {
                    set_once(&mut edit.next_file_number, varint(&mut r)?, tag)?;
                }
                FieldTag::LastSeqno => {
                    let seqno = seqno(&mut r)?;
                    set_once(&mut edit.last_seqno, seqno, tag)?;
                }
                FieldTag::RemovedTable => {
                    let level = level(&mut r)?;
                    edit.removed.push((level, varint(&mut r)?));
                }
                FieldTag::AddedTable => {
                    let level = level(&mut r)?;
                    edit.added.push((level, table(&mut r)?));
                }
                FieldTag::WalAdded => edit.wal_segments_added.push(varint(&mut r)?),
                FieldTag::WalSealed => {
                    let number = varint(&mut r)?;
                    edit.wal_segments_sealed.push((number, varint(&mut r)?));
                }
                FieldTag::UnexplainedTable => edit.unexplained_tables.push(varint(&mut r)?),
            }
        }
        Ok(edit)
    }
}

/// The level as its persisted byte. Levels are checked below [`NUM_LEVELS`]
/// before an edit is written; a larger one becomes `u8::MAX`, which no
/// decoder accepts.
fn level_byte(level: usize) -> u8 {
    u8::try_from(level).unwrap_or(u8::MAX)
}

fn set_once<T>(slot: &mut Option<T>, value: T, tag: FieldTag) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("field {tag:?} appears twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn varint(r: &mut Reader<'_>) -> Result<u64, String> {
    r.varint64()
        .ok_or_else(|| "truncated or overlong varint".to_string())
}

fn seqno(r: &mut Reader<'_>) -> Result<SeqNo, String> {
    let seqno = varint(r)?;
    if seqno > SEQNO_MAX {
        return Err(format!("seqno {seqno} exceeds the maximum {SEQNO_MAX}"));
    }
    Ok(seqno)
}

fn level(r: &mut Reader<'_>) -> Result<usize, String> {
    let level = usize::from(r.u8().ok_or("truncated level")?);
    if level >= NUM_LEVELS {
        return Err(format!("level {level} does not exist"));
    }
    Ok(level)
}

fn key(r: &mut Reader<'_>) -> Result<InternalKey, String> {
    let bytes = r
        .length_prefixed(ENCODED_KEY_BYTES_MAX)
        .ok_or("truncated or overlong key")?;
    InternalKey::from_encoded(bytes.to_vec())
        .ok_or_else(|| "key is not an internal key".to_string())
}

fn table(r: &mut Reader<'_>) -> Result<TableMeta, String> {
    Ok(TableMeta {
        number: varint(r)?,
        file_size: varint(r)?,
        smallest: key(r)?,
        largest: key(r)?,
        smallest_seqno: seqno(r)?,
        largest_seqno: seqno(r)?,
        entries: varint(r)?,
        tombstones: varint(r)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::table as sample_table;
    use proptest::prelude::*;

    fn sample_edit() -> VersionEdit {
        VersionEdit {
            added: vec![
                (0, sample_table(7, "a", "m", (3, 9))),
                (4, sample_table(8, "n", "z", (1, 2))),
            ],
            removed: vec![(1, 3), (6, 5)],
            next_file_number: Some(9),
            last_seqno: Some(42),
            log_number: Some(6),
            wal_segments_added: vec![7],
            wal_segments_sealed: vec![(6, 4096)],
            unexplained_tables: vec![50],
        }
    }

    #[test]
    fn edit_round_trips() {
        let edit = sample_edit();
        assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
        let empty = VersionEdit::default();
        assert_eq!(empty.encode(), vec![EDIT_FORMAT_VERSION]);
        assert_eq!(VersionEdit::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn unknown_tags_versions_and_duplicates_are_rejected() {
        assert!(VersionEdit::decode(&[]).is_err());
        assert!(VersionEdit::decode(&[0]).unwrap_err().contains("format 0"));
        assert!(VersionEdit::decode(&[3]).unwrap_err().contains("format 3"));
        assert!(
            VersionEdit::decode(&[1, 0])
                .unwrap_err()
                .contains("unknown field tag 0")
        );
        assert!(
            VersionEdit::decode(&[2, 9, 0])
                .unwrap_err()
                .contains("unknown field tag 9")
        );
        assert!(
            VersionEdit::decode(&[1, 8, 5])
                .unwrap_err()
                .contains("unknown field tag 8")
        );
        // The WAL segment fields came with format 2: a format 1 edit
        // holding one is not an edit this code (or the old one) wrote.
        assert!(
            VersionEdit::decode(&[1, 6, 0])
                .unwrap_err()
                .contains("unknown field tag 6")
        );
        assert!(
            VersionEdit::decode(&[1, 7, 1, 2])
                .unwrap_err()
                .contains("unknown field tag 7")
        );
        assert!(
            VersionEdit::decode(&[1, 1, 5, 1, 6])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            VersionEdit::decode(&[1, 4, 7, 1])
                .unwrap_err()
                .contains("level 7")
        );
        assert!(
            VersionEdit::decode(&[1, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .is_err()
        );
    }

    /// An edit written by the first format (before WAL segments were
    /// tracked) still reads, with no WAL segment fields.
    #[test]
    fn format_1_edits_still_decode() {
        let v1 = [1, 1, 6, 2, 9, 3, 42, 4, 1, 3];
        let edit = VersionEdit::decode(&v1).unwrap();
        assert_eq!(edit.log_number, Some(6));
        assert_eq!(edit.next_file_number, Some(9));
        assert_eq!(edit.last_seqno, Some(42));
        assert_eq!(edit.removed, vec![(1, 3)]);
        assert!(edit.wal_segments_added.is_empty() && edit.wal_segments_sealed.is_empty());
        assert!(edit.unexplained_tables.is_empty());
        // Written again, it is a format 2 edit with the same fields.
        assert_eq!(edit.encode()[0], EDIT_FORMAT_VERSION);
        assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
    }

    #[test]
    fn every_truncation_of_a_valid_edit_is_rejected() {
        let bytes = sample_edit().encode();
        // Any prefix ending inside a field fails; prefixes ending between
        // fields decode to a smaller edit.
        for len in 0..bytes.len() {
            if let Ok(edit) = VersionEdit::decode(&bytes[..len]) {
                assert_eq!(edit.encode(), bytes[..len]);
            }
        }
    }

    fn key_strategy() -> impl Strategy<Value = InternalKey> {
        (
            proptest::collection::vec(any::<u8>(), 0..12),
            0..=SEQNO_MAX,
            1u8..=2,
        )
            .prop_map(|(user, seqno, kind)| {
                let kind = if kind == 1 {
                    kevo_core::ValueKind::Delete
                } else {
                    kevo_core::ValueKind::Put
                };
                InternalKey::new(&user, seqno, kind)
            })
    }

    fn table_strategy() -> impl Strategy<Value = TableMeta> {
        (
            any::<u64>(),
            any::<u64>(),
            key_strategy(),
            key_strategy(),
            0..=SEQNO_MAX,
            0..=SEQNO_MAX,
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(number, file_size, smallest, largest, s1, s2, entries, tombstones)| TableMeta {
                    number,
                    file_size,
                    smallest,
                    largest,
                    smallest_seqno: s1,
                    largest_seqno: s2,
                    entries,
                    tombstones,
                },
            )
    }

    pub(crate) fn edit_strategy() -> impl Strategy<Value = VersionEdit> {
        (
            proptest::collection::vec((0..NUM_LEVELS, table_strategy()), 0..5),
            proptest::collection::vec((0..NUM_LEVELS, any::<u64>()), 0..5),
            proptest::option::of(any::<u64>()),
            proptest::option::of(0..=SEQNO_MAX),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u64>(), 0..3),
            proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
            proptest::collection::vec(any::<u64>(), 0..3),
        )
            .prop_map(
                |(
                    added,
                    removed,
                    next_file_number,
                    last_seqno,
                    log_number,
                    wal_added,
                    wal_sealed,
                    unexplained,
                )| {
                    VersionEdit {
                        added,
                        removed,
                        next_file_number,
                        last_seqno,
                        log_number,
                        wal_segments_added: wal_added,
                        wal_segments_sealed: wal_sealed,
                        unexplained_tables: unexplained,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(edit in edit_strategy()) {
            let bytes = edit.encode();
            prop_assert_eq!(VersionEdit::decode(&bytes), Ok(edit));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(edit) = VersionEdit::decode(&bytes) {
                prop_assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
            }
        }

        #[test]
        fn damaged_encodings_never_panic(
            edit in edit_strategy(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = edit.encode();
            for (at, mask) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            let len = cut.index(bytes.len() + 1);
            for input in [&bytes[..], &bytes[..len]] {
                if let Ok(decoded) = VersionEdit::decode(input) {
                    prop_assert_eq!(VersionEdit::decode(&decoded.encode()), Ok(decoded));
                }
            }
        }
    }
}

//! [`VersionEdit`]: one change to the version set, and its encoding (one
//! manifest record).
//!
//! See `docs/format/manifest.md` for the byte tables and a worked example.
//!
//! ```text
//! edit  = format version u8 (= 3, or 4 when it adds a table with range
//!         tombstones; 1 and 2 are still read) | field*
//! field = tag u8 | body
//!   1 log number        varint64
//!   2 next file number  varint64
//!   3 last seqno        varint64 (<= SEQNO_MAX)
//!   4 removed table     level u8 | number varint64
//!   5 added table       level u8 | number varint64 | file size varint64
//!                       | smallest key (varint32 length, bytes) | largest key (same)
//!                       | smallest seqno varint64 | largest seqno varint64
//!                       | entries varint64 | tombstones varint64
//!   6 WAL segment added   number varint64                      (format 2 on)
//!   7 WAL segment sealed  number varint64 | bytes varint64     (format 2 on)
//!   8 unexplained table   number varint64                      (format 2 on)
//!   9 keyspace            id varint32, never 0                 (format 3 on)
//!  10 keyspace created    name (varint32 length <= 255, bytes) (format 3 on)
//!  11 keyspace dropped    no body                              (format 3 on)
//!  12 keyspace log number varint64                             (format 3 on)
//!  13 next keyspace id    varint32                             (format 3 on)
//!  14 added table with range tombstones: tag 5's body
//!                       | range tombstones varint64, at least 1  (format 4 on)
//! ```
//!
//! Tags 1 to 3 and 9 to 13 appear at most once each. An unknown tag (a
//! tag newer than the edit's format is unknown), a level past
//! [`NUM_LEVELS`], a key that is not an internal key or is longer than
//! [`KEY_BYTES_MAX`] plus the trailer, a seqno past [`SEQNO_MAX`], a
//! keyspace name [`check_keyspace_name`] refuses, keyspace fields that
//! contradict each other (see [`VersionEdit::check_keyspace_fields`]) or
//! trailing bytes make the whole edit undecodable.

use kevo_core::{
    DEFAULT_KEYSPACE, InternalKey, KEY_BYTES_MAX, KEYSPACE_NAME_BYTES_MAX, KeyspaceId, Reader,
    SEQNO_MAX, SeqNo, TRAILER_BYTES, check_keyspace_name, put_varint32, put_varint64,
};

use crate::meta::{NUM_LEVELS, TableMeta};

/// The newest edit encoding: 4, which added tables with range tombstones
/// (tag 14). An edit is written at format 4 only when it adds such a
/// table, and at format 3 (which added keyspaces, tags 9 to 13) otherwise,
/// so that a database without range deletes stays readable by the code
/// before them. Decoders also read format 2 (which added the WAL segment
/// fields, tags 6 and 7, and unexplained tables, tag 8) and format 1, the
/// first one; an edit of either belongs to the default keyspace.
pub const EDIT_FORMAT_VERSION: u8 = 4;

/// The format of an edit that adds no table with range tombstones.
const EDIT_FORMAT_WITHOUT_RANGE_TOMBSTONES: u8 = 3;

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
    Keyspace = 9,
    KeyspaceCreated = 10,
    KeyspaceDropped = 11,
    KeyspaceLogNumber = 12,
    NextKeyspaceId = 13,
    AddedTableWithRangeTombstones = 14,
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
            9 => Some(FieldTag::Keyspace),
            10 => Some(FieldTag::KeyspaceCreated),
            11 => Some(FieldTag::KeyspaceDropped),
            12 => Some(FieldTag::KeyspaceLogNumber),
            13 => Some(FieldTag::NextKeyspaceId),
            14 => Some(FieldTag::AddedTableWithRangeTombstones),
            _ => None,
        }
    }

    /// The first edit format that has this tag.
    fn since_format(self) -> u8 {
        match self {
            FieldTag::LogNumber
            | FieldTag::NextFileNumber
            | FieldTag::LastSeqno
            | FieldTag::RemovedTable
            | FieldTag::AddedTable => 1,
            FieldTag::WalAdded | FieldTag::WalSealed | FieldTag::UnexplainedTable => 2,
            FieldTag::Keyspace
            | FieldTag::KeyspaceCreated
            | FieldTag::KeyspaceDropped
            | FieldTag::KeyspaceLogNumber
            | FieldTag::NextKeyspaceId => 3,
            FieldTag::AddedTableWithRangeTombstones => 4,
        }
    }
}

/// One change to the version set: tables added and removed, counters moved,
/// a keyspace created or dropped.
///
/// [`VersionSet::log_and_apply`](crate::VersionSet::log_and_apply) writes
/// it to the manifest as one record and installs the version it makes. A
/// table moved between levels is removed from one and added to the other in
/// the same edit.
///
/// An edit changes the tables of one keyspace, [`VersionEdit::keyspace`]
/// (the default keyspace unless set): a flush or a compaction acts on one.
/// The counters (`next_file_number`, `last_seqno`, `log_number`) and the
/// WAL segments are shared by every keyspace.
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
    /// The keyspace whose tables `added` and `removed` change, and whose
    /// log number `keyspace_log_number` is; the one `keyspace_created` and
    /// `keyspace_dropped` create or drop. Default: the default keyspace.
    pub keyspace: KeyspaceId,
    /// This edit creates keyspace `keyspace` with this name: an empty
    /// version (plus the tables of `added`, in a manifest's snapshot), whose
    /// log number is `keyspace_log_number`, or else the global log number.
    /// The id must never have been handed out (at or above the next
    /// keyspace id) and the name not be in use.
    pub keyspace_created: Option<String>,
    /// This edit drops keyspace `keyspace` (never the default one): its
    /// tables become obsolete, its name is free again, and its id is never
    /// handed out again. A drop carries no table and no keyspace log number.
    pub keyspace_dropped: bool,
    /// WAL segments numbered below this hold nothing of keyspace `keyspace`
    /// that is not in its tables (RocksDB's per-column-family log number).
    /// Never decreases. For the default keyspace, an edit that sets
    /// `log_number` without this raises the default keyspace's log number
    /// to it too, as every edit before keyspaces did.
    pub keyspace_log_number: Option<u64>,
    /// The keyspace id counter: ids at or above it were never handed out.
    /// Recorded by a manifest's snapshot and by every create.
    pub next_keyspace_id: Option<KeyspaceId>,
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
    ///   9 keyspace            id varint32 (written only when not 0)
    ///  10 keyspace created    name: varint32 length | bytes
    ///  11 keyspace dropped    no body
    ///  12 keyspace log number varint64
    ///  13 next keyspace id    varint32
    /// ```
    ///
    /// Tags are written in the order 1, 2, 3, 9, 10, 11, 12, 13, then every
    /// 4, 5, 6, 7 and 8.
    pub fn encode(&self) -> Vec<u8> {
        let version = if self.added.iter().any(|(_, t)| t.range_tombstones > 0) {
            EDIT_FORMAT_VERSION
        } else {
            EDIT_FORMAT_WITHOUT_RANGE_TOMBSTONES
        };
        let mut out = vec![version];
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
        if self.keyspace != DEFAULT_KEYSPACE {
            out.push(FieldTag::Keyspace as u8);
            put_varint32(&mut out, self.keyspace);
        }
        if let Some(name) = &self.keyspace_created {
            out.push(FieldTag::KeyspaceCreated as u8);
            put_varint32(&mut out, u32::try_from(name.len()).unwrap_or(u32::MAX));
            out.extend_from_slice(name.as_bytes());
        }
        if self.keyspace_dropped {
            out.push(FieldTag::KeyspaceDropped as u8);
        }
        if let Some(number) = self.keyspace_log_number {
            out.push(FieldTag::KeyspaceLogNumber as u8);
            put_varint64(&mut out, number);
        }
        if let Some(id) = self.next_keyspace_id {
            out.push(FieldTag::NextKeyspaceId as u8);
            put_varint32(&mut out, id);
        }
        for &(level, number) in &self.removed {
            out.push(FieldTag::RemovedTable as u8);
            out.push(level_byte(level));
            put_varint64(&mut out, number);
        }
        for (level, table) in &self.added {
            let tag = if table.range_tombstones > 0 {
                FieldTag::AddedTableWithRangeTombstones
            } else {
                FieldTag::AddedTable
            };
            out.push(tag as u8);
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
            if table.range_tombstones > 0 {
                put_varint64(&mut out, table.range_tombstones);
            }
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
    /// reservation record, or a keyspace created without tables; a drop
    /// makes every table of its keyspace obsolete, but changes no version
    /// that stays).
    pub fn changes_no_table(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Checks the keyspace fields against each other: a keyspace is not
    /// both created and dropped; the default keyspace is neither created
    /// nor dropped; a created keyspace has a name [`check_keyspace_name`]
    /// accepts, an id below `KeyspaceId::MAX` (which is never handed out,
    /// so that the next id always fits) and no table to remove; a drop
    /// carries no table and no keyspace log number.
    ///
    /// [`VersionEdit::decode`] refuses an edit that fails this, and
    /// [`VersionSet`](crate::VersionSet) writes none.
    ///
    /// # Errors
    /// What is wrong with the edit's keyspace fields.
    pub fn check_keyspace_fields(&self) -> Result<(), String> {
        let id = self.keyspace;
        if let Some(name) = &self.keyspace_created {
            if self.keyspace_dropped {
                return Err(format!("creates and drops keyspace {id}"));
            }
            if id == DEFAULT_KEYSPACE {
                return Err("creates the default keyspace, which always exists".to_string());
            }
            if id == KeyspaceId::MAX {
                return Err(format!("creates keyspace {id}, an id never handed out"));
            }
            check_keyspace_name(name)?;
            if !self.removed.is_empty() {
                return Err(format!("creates keyspace {id} and removes a table from it"));
            }
        }
        if self.keyspace_dropped {
            if id == DEFAULT_KEYSPACE {
                return Err("drops the default keyspace, which cannot be dropped".to_string());
            }
            if !self.changes_no_table() || self.keyspace_log_number.is_some() {
                return Err(format!(
                    "drops keyspace {id} and changes its tables or log number"
                ));
            }
        }
        Ok(())
    }

    /// Decodes an edit written by [`VersionEdit::encode`].
    ///
    /// Never panics, and allocates nothing whose size was read from the
    /// input: every list grows one decoded item at a time, every key is at
    /// most [`KEY_BYTES_MAX`] plus the trailer and every keyspace name at
    /// most [`KEYSPACE_NAME_BYTES_MAX`].
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
                .filter(|tag| tag.since_format() <= version)
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
                FieldTag::AddedTableWithRangeTombstones => {
                    let level = level(&mut r)?;
                    let mut table = table(&mut r)?;
                    table.range_tombstones = varint(&mut r)?;
                    if table.range_tombstones == 0 {
                        return Err(format!(
                            "table {} at byte {at} is recorded with range tombstones, but 0 of them",
                            table.number
                        ));
                    }
                    edit.added.push((level, table));
                }
                FieldTag::WalAdded => edit.wal_segments_added.push(varint(&mut r)?),
                FieldTag::WalSealed => {
                    let number = varint(&mut r)?;
                    edit.wal_segments_sealed.push((number, varint(&mut r)?));
                }
                FieldTag::UnexplainedTable => edit.unexplained_tables.push(varint(&mut r)?),
                FieldTag::Keyspace => {
                    // Never 0 (the default keyspace is the tag's absence),
                    // so a second tag finds a keyspace already set.
                    if edit.keyspace != DEFAULT_KEYSPACE {
                        return Err(format!("field {tag:?} appears twice"));
                    }
                    edit.keyspace = keyspace_id(&mut r)?;
                    if edit.keyspace == DEFAULT_KEYSPACE {
                        return Err(format!("keyspace 0 written explicitly at byte {at}"));
                    }
                }
                FieldTag::KeyspaceCreated => {
                    set_once(&mut edit.keyspace_created, keyspace_name(&mut r)?, tag)?;
                }
                FieldTag::KeyspaceDropped => {
                    if edit.keyspace_dropped {
                        return Err(format!("field {tag:?} appears twice"));
                    }
                    edit.keyspace_dropped = true;
                }
                FieldTag::KeyspaceLogNumber => {
                    set_once(&mut edit.keyspace_log_number, varint(&mut r)?, tag)?;
                }
                FieldTag::NextKeyspaceId => {
                    set_once(&mut edit.next_keyspace_id, keyspace_id(&mut r)?, tag)?;
                }
            }
        }
        edit.check_keyspace_fields()?;
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

fn keyspace_id(r: &mut Reader<'_>) -> Result<KeyspaceId, String> {
    r.varint32()
        .ok_or_else(|| "truncated or overlong keyspace id".to_string())
}

fn keyspace_name(r: &mut Reader<'_>) -> Result<String, String> {
    let bytes = r
        .length_prefixed(KEYSPACE_NAME_BYTES_MAX)
        .ok_or("truncated or overlong keyspace name")?;
    let name = std::str::from_utf8(bytes).map_err(|_| "keyspace name is not UTF-8".to_string())?;
    check_keyspace_name(name)?;
    Ok(name.to_string())
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
        range_tombstones: 0,
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
            keyspace: 300,
            keyspace_created: None,
            keyspace_dropped: false,
            keyspace_log_number: Some(5),
            next_keyspace_id: Some(301),
        }
    }

    fn create(id: KeyspaceId, name: &str) -> VersionEdit {
        VersionEdit {
            keyspace: id,
            keyspace_created: Some(name.to_string()),
            keyspace_log_number: Some(4),
            next_keyspace_id: Some(id + 1),
            ..VersionEdit::default()
        }
    }

    #[test]
    fn edits_are_format_4_only_with_a_table_with_range_tombstones() {
        let mut edit = sample_edit();
        assert_eq!(edit.encode()[0], 3, "no range tombstones: format 3");
        edit.added[1].1.range_tombstones = 5;
        let bytes = edit.encode();
        assert_eq!(bytes[0], 4);
        assert_eq!(VersionEdit::decode(&bytes), Ok(edit.clone()));
        // Tag 14 in a format-3 edit is an unknown tag.
        let mut as_3 = bytes.clone();
        as_3[0] = 3;
        let e = VersionEdit::decode(&as_3).unwrap_err();
        assert!(e.contains("unknown field tag 14"), "{e}");
    }

    #[test]
    fn edit_round_trips() {
        let edit = sample_edit();
        assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
        let empty = VersionEdit::default();
        assert_eq!(empty.encode(), vec![EDIT_FORMAT_WITHOUT_RANGE_TOMBSTONES]);
        assert_eq!(VersionEdit::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn unknown_tags_versions_and_duplicates_are_rejected() {
        assert!(VersionEdit::decode(&[]).is_err());
        assert!(VersionEdit::decode(&[0]).unwrap_err().contains("format 0"));
        assert!(VersionEdit::decode(&[5]).unwrap_err().contains("format 5"));
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
        assert_eq!(edit.keyspace, DEFAULT_KEYSPACE);
        // Written again, it is a format 3 edit with the same fields.
        assert_eq!(edit.encode()[0], EDIT_FORMAT_WITHOUT_RANGE_TOMBSTONES);
        assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
    }

    /// An edit of format 2 (before keyspaces) reads as before, for the
    /// default keyspace, with no keyspace field.
    #[test]
    fn format_2_edits_still_decode_for_the_default_keyspace() {
        let v2 = [2, 1, 6, 2, 9, 3, 42, 4, 1, 3, 6, 7, 7, 6, 0x80, 0x20, 8, 50];
        let edit = VersionEdit::decode(&v2).unwrap();
        let expected = VersionEdit {
            log_number: Some(6),
            next_file_number: Some(9),
            last_seqno: Some(42),
            removed: vec![(1, 3)],
            wal_segments_added: vec![7],
            wal_segments_sealed: vec![(6, 4096)],
            unexplained_tables: vec![50],
            ..VersionEdit::default()
        };
        assert_eq!(edit, expected);
        let mut v3 = v2.to_vec();
        v3[0] = EDIT_FORMAT_WITHOUT_RANGE_TOMBSTONES;
        assert_eq!(edit.encode(), v3, "only the format byte changed");
    }

    /// The keyspace tags came with format 3: in a format 1 or 2 edit they
    /// are unknown tags, and the edit is not one any writer produced.
    #[test]
    fn keyspace_tags_in_a_format_2_edit_are_refused() {
        for (tag, body) in [
            (9u8, &[5u8][..]),
            (10, &[1, b'a'][..]),
            (11, &[][..]),
            (12, &[3][..]),
            (13, &[2][..]),
        ] {
            for format in [1u8, 2] {
                let mut bytes = vec![format, tag];
                bytes.extend_from_slice(body);
                let err = VersionEdit::decode(&bytes).unwrap_err();
                assert!(
                    err.contains(&format!("unknown field tag {tag}")),
                    "format {format} tag {tag}: {err}"
                );
            }
        }
        // The same fields in format 3 decode.
        assert_eq!(
            VersionEdit::decode(&[3, 9, 5, 12, 3]),
            Ok(VersionEdit {
                keyspace: 5,
                keyspace_log_number: Some(3),
                ..VersionEdit::default()
            })
        );
    }

    #[test]
    fn keyspace_edits_round_trip() {
        for edit in [
            create(1, "index"),
            VersionEdit {
                keyspace: 7,
                keyspace_dropped: true,
                ..VersionEdit::default()
            },
            VersionEdit {
                added: vec![(0, sample_table(9, "a", "c", (1, 2)))],
                keyspace: KeyspaceId::MAX,
                keyspace_log_number: Some(12),
                ..VersionEdit::default()
            },
            VersionEdit {
                keyspace: 2,
                keyspace_created: Some("x".repeat(KEYSPACE_NAME_BYTES_MAX)),
                added: vec![(3, sample_table(9, "a", "c", (1, 2)))],
                next_keyspace_id: Some(KeyspaceId::MAX),
                ..VersionEdit::default()
            },
        ] {
            assert_eq!(edit.check_keyspace_fields(), Ok(()));
            assert_eq!(VersionEdit::decode(&edit.encode()), Ok(edit));
        }
        // The default keyspace is the tag's absence.
        assert!(!VersionEdit::default().encode().contains(&9));
        assert_eq!(
            create(1, "index").encode(),
            [3, 9, 1, 10, 5, b'i', b'n', b'd', b'e', b'x', 12, 4, 13, 2]
        );
    }

    #[test]
    fn keyspace_names_are_validated_when_decoding() {
        let with_name = |name: &[u8]| {
            let mut bytes = vec![3, 9, 1, 10, name.len() as u8];
            bytes.extend_from_slice(name);
            VersionEdit::decode(&bytes)
        };
        assert!(with_name(b"raft-log.2").is_ok());
        for bad in [&b""[..], b".hidden", b"a b", b"a/b", b"\xc3\xbc", b"tab\t"] {
            assert!(with_name(bad).is_err(), "{bad:?}");
        }
        assert!(with_name(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        // A length past the maximum is refused before anything is read.
        let mut long = vec![3, 9, 1, 10];
        put_varint32(&mut long, 256);
        long.extend(std::iter::repeat_n(b'a', 256));
        assert!(VersionEdit::decode(&long).unwrap_err().contains("overlong"));
        let mut huge = vec![3, 9, 1, 10];
        put_varint32(&mut huge, u32::MAX);
        assert!(VersionEdit::decode(&huge).is_err());
    }

    #[test]
    fn contradictory_keyspace_fields_are_refused() {
        let refused = |bytes: &[u8], what: &str| {
            let err = VersionEdit::decode(bytes).unwrap_err();
            assert!(err.contains(what), "{bytes:?}: {err}");
        };
        refused(&[3, 9, 0], "keyspace 0 written explicitly");
        refused(&[3, 9, 1, 9, 2], "appears twice");
        refused(&[3, 11, 9, 1, 11], "appears twice");
        refused(&[3, 12, 1, 12, 1], "appears twice");
        refused(&[3, 13, 1, 13, 1], "appears twice");
        refused(&[3, 10, 1, b'a', 9, 1, 10, 1, b'b'], "appears twice");
        refused(&[3, 10, 1, b'a'], "creates the default keyspace");
        refused(&[3, 11], "drops the default keyspace");
        refused(&[3, 9, 1, 10, 1, b'a', 11], "creates and drops");
        refused(&[3, 9, 1, 11, 12, 5], "drops keyspace 1 and changes");
        refused(&[3, 9, 1, 11, 4, 0, 5], "drops keyspace 1 and changes");
        refused(&[3, 9, 1, 10, 1, b'a', 4, 0, 5], "removes a table");
        refused(
            &[3, 9, 0xff, 0xff, 0xff, 0xff, 0x0f, 10, 1, b'a'],
            "never handed out",
        );
        refused(&[3, 9, 0x80, 0x80, 0x80, 0x80, 0x10], "keyspace id");
        refused(&[3, 13], "keyspace id");
        refused(&[3, 10, 4, b'a'], "keyspace name");
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
            (
                any::<u64>(),
                any::<u64>(),
                prop_oneof![Just(0u64), any::<u64>()],
            ),
        )
            .prop_map(
                |(number, file_size, smallest, largest, s1, s2, (entries, tombstones, ranges))| {
                    TableMeta {
                        number,
                        file_size,
                        smallest,
                        largest,
                        smallest_seqno: s1,
                        largest_seqno: s2,
                        entries,
                        tombstones,
                        range_tombstones: ranges,
                    }
                },
            )
    }

    /// The keyspace fields of an edit: its keyspace, and whether it is a
    /// create (with a name), a drop, or neither.
    fn keyspace_strategy() -> impl Strategy<Value = (KeyspaceId, u8, String)> {
        (
            prop_oneof![
                Just(DEFAULT_KEYSPACE),
                1..4 as KeyspaceId,
                any::<KeyspaceId>()
            ],
            0u8..3,
            "[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,12}",
        )
    }

    /// Any edit [`VersionEdit::check_keyspace_fields`] accepts.
    pub(crate) fn edit_strategy() -> impl Strategy<Value = VersionEdit> {
        (
            table_edit_strategy(),
            keyspace_strategy(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<KeyspaceId>()),
        )
            .prop_map(|(mut edit, (id, kind, name), log_number, next_id)| {
                edit.keyspace = id;
                edit.keyspace_log_number = log_number;
                edit.next_keyspace_id = next_id;
                if id != DEFAULT_KEYSPACE && id != KeyspaceId::MAX && kind == 1 {
                    edit.keyspace_created = Some(name);
                    edit.removed.clear();
                } else if id != DEFAULT_KEYSPACE && kind == 2 {
                    edit.keyspace_dropped = true;
                    edit.added.clear();
                    edit.removed.clear();
                    edit.keyspace_log_number = None;
                }
                edit
            })
    }

    fn table_edit_strategy() -> impl Strategy<Value = VersionEdit> {
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
                        ..VersionEdit::default()
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(edit in edit_strategy()) {
            prop_assert_eq!(edit.check_keyspace_fields(), Ok(()));
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

//! Reading an arbitrary table file.
//!
//! The input is the whole content of a table file (placed in a `MemFs`). It
//! is checked twice: as given, and with its checksums repaired (the footer's,
//! those of the blocks the footer names, the range-tombstone block the
//! properties name, then those of the data blocks the index names), so that
//! mutations reach the block, index, range-tombstone, filter and properties
//! decoders instead of stopping at a checksum.
//!
//! `Table::open`; if it opens: `verify()`, the `blocks()` walk, a forward and
//! a backward cursor scan, point `get`s and cursor seeks with keys taken from
//! the scan and from the input, on a table with a small block cache and on
//! one without a cache. What must hold for *any* input:
//!
//! - nothing panics (overflow checks are on in `cargo fuzz` builds);
//! - every error is `Corruption`; a cursor that returned an error is invalid;
//!   the block walk ends after an error;
//! - a `get` finds an entry with `seqno <= snapshot`; blocks the walk reports
//!   lie inside the file;
//! - the range tombstones of a table that opens are in canonical fragmented
//!   form (`FragmentedTombstones::from_fragments` accepts them, fragmenting
//!   them again changes nothing), as many as the properties say, within the
//!   properties' seqno range.
//!
//! When `verify()` accepts the table, the reads must agree with it and with
//! each other (the forward scan is then the model):
//!
//! - the forward scan succeeds, keys strictly increasing by
//!   `compare_internal_keys`, as many entries and tombstones as `verify()`
//!   counted, first and last keys those of the properties (or, with range
//!   tombstones, within them), and every user key passes the filter;
//! - the backward scan succeeds and is the forward scan reversed;
//! - every `get(user_key, snapshot)` returns exactly the model's newest entry
//!   of that user key with `seqno <= snapshot` (value included), for scanned
//!   keys, keys next to them and keys from the input, at several snapshots;
//! - `seek(t)` lands on the model's first entry `>= t`, `seek_for_prev(t)`
//!   on its last entry `<= t`;
//! - the block walk has no error and no checksum mismatch, and reports
//!   `verify()`'s data blocks and bytes, then the range tombstones (when the
//!   table has any), the filter (when it has one), the properties and the
//!   index.
//!
//! Work is bounded: scans stop after `SCAN_ENTRIES_MAX` entries or
//! `SCAN_BYTES_MAX` key bytes (the model checks are then skipped), an
//! unverified table's scan stops at the first key out of order, the walk
//! after `WALK_BLOCKS_MAX` blocks.
#![no_main]

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use kevo_core::{
    Cursor, Error, FragmentedTombstones, InternalKey, MemFs, Reader, SEQNO_MAX, SeqNo, ValueKind,
    compare_internal_keys, parse_internal_key, user_key, xxh3_64,
};
use kevo_sstable::{
    BLOCK_TRAILER_BYTES, BlockKind, ChecksumStatus, Compression, FOOTER_BYTES, Found,
    LruBlockCache, ReadOptions, Table, VerifyReport,
};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/000001.sst";
/// Cache of the cached table: 1 KiB per shard, so blocks are evicted and
/// larger ones never cached.
const CACHE_BYTES: usize = 16 << 10;
const SCAN_ENTRIES_MAX: usize = 1 << 17;
const SCAN_BYTES_MAX: usize = 32 << 20;
const WALK_BLOCKS_MAX: usize = 1 << 14;
/// Scanned entries whose keys are probed (evenly spaced, first and last included).
const SAMPLED_ENTRIES: usize = 24;
/// Bytes of the footer its checksum covers (three fixed handles, two type
/// bytes, flags, version), then the checksum and the magic.
const FOOTER_CHECKED_BYTES: usize = 3 * 16 + 1 + 1 + 2 + 4;

fuzz_target!(|data: &[u8]| {
    check(data);
    let repaired = repair_checksums(data);
    if repaired != data {
        check(&repaired);
    }
});

/// One scanned entry (the value by length and hash, to bound memory).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: Vec<u8>,
    value_len: usize,
    value_hash: u64,
}

impl Entry {
    fn of(cursor: &impl Cursor) -> Entry {
        Entry {
            key: cursor.key().to_vec(),
            value_len: cursor.value().len(),
            value_hash: xxh3_64(cursor.value()),
        }
    }

    fn seqno(&self) -> SeqNo {
        parse_internal_key(&self.key).map_or(0, |k| k.seqno)
    }
}

/// What a scan saw.
#[derive(Debug)]
struct Scan {
    entries: Vec<Entry>,
    /// Ran off the end of the table without error or bailing out.
    complete: bool,
    error: Option<Error>,
}

fn expect_corruption(what: &str, e: &Error) {
    // Formatting an error must not panic either.
    let _ = e.to_string();
    assert!(e.is_corruption(), "{what}: not a corruption error: {e:?}");
}

fn open(fs: &MemFs, cache: bool) -> Result<Arc<Table>, Error> {
    let mut options = ReadOptions::default();
    if cache {
        options = options.with_cache(Arc::new(LruBlockCache::new(CACHE_BYTES)));
    }
    Table::open(fs, Path::new(PATH), options).map(Arc::new)
}

fn check(data: &[u8]) {
    let fs = MemFs::new();
    fs.write_file(Path::new(PATH), data).expect("write_file");
    let table = match open(&fs, true) {
        Ok(table) => table,
        Err(e) => {
            expect_corruption("open", &e);
            return;
        }
    };
    let uncached = open(&fs, false).expect("a table that opened once opens again");
    assert_eq!(table.file_size(), data.len() as u64);
    let _ = format!("{table:?} {:?}", table.properties());
    check_range_tombstones(&table);

    let report = match table.verify() {
        Ok(report) => Some(report),
        Err(e) => {
            expect_corruption("verify", &e);
            None
        }
    };
    let verified = report.is_some();
    walk_blocks(&table, report.as_ref());

    let forward = scan(&table, true, verified, SCAN_ENTRIES_MAX);
    let backward_cap = if forward.complete {
        forward.entries.len() + 1
    } else {
        SCAN_ENTRIES_MAX
    };
    let backward = scan(&table, false, verified, backward_cap);

    // The model: the forward scan of a table verify() accepted.
    let model = match &report {
        Some(report) if forward.entries.len() < SCAN_ENTRIES_MAX => {
            assert!(
                forward.error.is_none(),
                "verified table: forward scan failed: {:?}",
                forward.error
            );
            if forward.complete {
                Some(check_model(&table, report, &forward, &backward))
            } else {
                None // Stopped at SCAN_BYTES_MAX.
            }
        }
        _ => None,
    };

    // Point lookups and seeks, with keys from the scan and from the input.
    let mut user_keys = probe_user_keys(data);
    let sampled = sample(&forward.entries);
    for entry in &sampled {
        let user = user_key(&entry.key);
        user_keys.push(user.to_vec());
        let mut longer = user.to_vec();
        longer.push(0);
        user_keys.push(longer);
        if let Some((&last, head)) = user.split_last() {
            user_keys.push(head.to_vec());
            let mut bumped = head.to_vec();
            bumped.push(last.wrapping_add(1));
            user_keys.push(bumped);
        }
    }
    // Scanned seqnos and one less (at most 12 of them, spread), and the ends.
    let mut snapshots: Vec<SeqNo> = sampled
        .iter()
        .flat_map(|e| [e.seqno(), e.seqno().saturating_sub(1)])
        .collect();
    snapshots.sort_unstable();
    snapshots.dedup();
    let step = snapshots.len().div_ceil(12).max(1);
    let mut snapshots: Vec<SeqNo> = snapshots.into_iter().step_by(step).collect();
    snapshots.extend([SEQNO_MAX, u64::MAX, 0, 1]);

    for user in &user_keys {
        for &snapshot in &snapshots {
            let expected = model
                .as_ref()
                .map(|m| model_get(m, user, snapshot.min(SEQNO_MAX)));
            for t in [&table, &uncached] {
                check_get(t, user, snapshot, expected.as_ref());
            }
        }
    }

    let mut targets: Vec<Vec<u8>> = sampled.iter().map(|e| e.key.clone()).collect();
    for user in &user_keys {
        for snapshot in [SEQNO_MAX, 1] {
            targets.push(InternalKey::for_lookup(user, snapshot).as_bytes().to_vec());
        }
        // A slice of the input taken as an internal key, valid or not.
        targets.push(user.clone());
    }
    for t in [&table, &uncached] {
        let mut cursor = t.cursor();
        for target in &targets {
            check_seek(&mut cursor, target, model.as_deref());
        }
    }
}

/// The range tombstones of a table that opened: canonical fragmented form,
/// agreeing with the properties.
fn check_range_tombstones(table: &Table) {
    let set = table.range_tombstones();
    let p = table.properties();
    assert_eq!(
        set.len() as u64,
        p.range_tombstone_count,
        "range tombstone count"
    );
    let again = FragmentedTombstones::from_fragments(set.fragments().to_vec())
        .expect("open accepted range tombstones that are not in fragmented form");
    assert_eq!(&again, &**set);
    assert_eq!(
        &FragmentedTombstones::new(set.tombstones()),
        &**set,
        "range tombstones not in canonical fragmented form"
    );
    if let (Some(lo), Some(hi)) = (set.min_seqno(), set.max_seqno()) {
        assert!(
            p.smallest_seqno <= lo && hi <= p.largest_seqno,
            "range tombstone seqnos {lo}..={hi} outside the properties' range"
        );
    }
    if p.entry_count == 0 {
        assert!(
            !set.is_empty(),
            "a table with neither points nor range tombstones opened"
        );
    }
}

/// Checks a verified table's scans against `verify()`'s report; returns the
/// model (the forward scan).
fn check_model(
    table: &Table,
    report: &VerifyReport,
    forward: &Scan,
    backward: &Scan,
) -> Vec<Entry> {
    let entries = &forward.entries;
    assert_eq!(
        entries.len() as u64,
        report.entries,
        "scanned vs verified entries"
    );
    let tombstones = entries
        .iter()
        .filter(|e| parse_internal_key(&e.key).is_some_and(|k| k.kind == ValueKind::Delete))
        .count();
    assert_eq!(
        tombstones as u64, report.tombstones,
        "scanned vs verified tombstones"
    );
    let p = table.properties();
    assert_eq!(p.entry_count, report.entries);
    assert_eq!(
        table.range_tombstones().len() as u64,
        report.range_tombstones,
        "verified range tombstones"
    );
    if let Some(e) = entries
        .iter()
        .find(|e| !table.may_contain(user_key(&e.key)))
    {
        panic!(
            "verified table: the filter rejects user key {:02x?}, which the table holds",
            user_key(&e.key)
        );
    }
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        if table.range_tombstones().is_empty() {
            assert_eq!(
                first.key,
                p.smallest_key.as_bytes(),
                "first key vs properties"
            );
            assert_eq!(last.key, p.largest_key.as_bytes(), "last key vs properties");
        } else {
            // The bounds may come from the range tombstones.
            assert_ne!(
                compare_internal_keys(p.smallest_key.as_bytes(), &first.key),
                Ordering::Greater,
                "first key before the properties' smallest key"
            );
            assert_ne!(
                compare_internal_keys(p.largest_key.as_bytes(), &last.key),
                Ordering::Less,
                "last key after the properties' largest key"
            );
        }
    }
    assert!(
        backward.error.is_none() && backward.complete,
        "verified table: backward scan failed ({:?}) or stopped after {} of {} entries",
        backward.error,
        backward.entries.len(),
        entries.len()
    );
    let reversed: Vec<&Entry> = backward.entries.iter().rev().collect();
    let forward_refs: Vec<&Entry> = entries.iter().collect();
    assert!(
        reversed == forward_refs,
        "verified table: backward scan is not the forward scan reversed"
    );
    entries.clone()
}

/// Scans the whole table forward (`seek_to_first`, `next`) or backward
/// (`seek_to_last`, `prev`), stopping after `cap` entries. Keys out of order
/// are a failure for a verified table and end the scan otherwise.
fn scan(table: &Arc<Table>, forward: bool, verified: bool, cap: usize) -> Scan {
    let mut cursor = table.cursor();
    let mut entries: Vec<Entry> = Vec::new();
    let mut key_bytes = 0usize;
    let mut step = if forward {
        cursor.seek_to_first()
    } else {
        cursor.seek_to_last()
    };
    let want = if forward {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    loop {
        if let Err(e) = step {
            expect_corruption("scan", &e);
            assert!(!cursor.valid(), "a cursor that returned an error is valid");
            return Scan {
                entries,
                complete: false,
                error: Some(e),
            };
        }
        if !cursor.valid() {
            return Scan {
                entries,
                complete: true,
                error: None,
            };
        }
        if entries.len() >= cap || key_bytes >= SCAN_BYTES_MAX {
            break;
        }
        if let Some(last) = entries.last() {
            let order = compare_internal_keys(&last.key, cursor.key());
            if order != want {
                assert!(
                    !verified,
                    "verified table: {} scan keys out of order: {:02x?} then {:02x?}",
                    if forward { "forward" } else { "backward" },
                    last.key,
                    cursor.key()
                );
                break;
            }
        }
        key_bytes += cursor.key().len();
        entries.push(Entry::of(&cursor));
        step = if forward {
            cursor.next()
        } else {
            cursor.prev()
        };
    }
    Scan {
        entries,
        complete: false,
        error: None,
    }
}

fn walk_blocks(table: &Table, report: Option<&VerifyReport>) {
    let size = table.file_size();
    let mut walk = table.blocks();
    let mut kinds = Vec::new();
    let (mut data_blocks, mut data_bytes) = (0u64, 0u64);
    for item in walk.by_ref().take(WALK_BLOCKS_MAX) {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                expect_corruption("blocks", &e);
                assert!(report.is_none(), "verified table: block walk failed: {e:?}");
                assert!(
                    walk.next().is_none(),
                    "the block walk goes on after an error"
                );
                return;
            }
        };
        let end = info.handle.end_with_trailer();
        assert!(
            end.is_some_and(|end| end <= size),
            "block {info:?} outside a file of {size} bytes"
        );
        if info.checksum == ChecksumStatus::Ok && info.compression == Some(Compression::None) {
            assert_eq!(info.uncompressed_bytes, Some(info.handle.size));
        }
        if report.is_some() {
            assert_eq!(
                info.checksum,
                ChecksumStatus::Ok,
                "verified table: {info:?}"
            );
        }
        if info.kind == BlockKind::Data {
            data_blocks += 1;
            data_bytes += info.handle.size;
        }
        if kinds.last() != Some(&info.kind) {
            kinds.push(info.kind);
        }
    }
    let Some(report) = report else { return };
    if data_blocks as usize >= WALK_BLOCKS_MAX {
        return;
    }
    assert!(
        walk.next().is_none(),
        "the block walk goes on after the index"
    );
    assert_eq!(
        data_blocks, report.data_blocks,
        "walked vs verified data blocks"
    );
    assert_eq!(
        data_bytes, report.data_bytes,
        "walked vs verified data bytes"
    );
    let mut expected = Vec::new();
    if report.data_blocks > 0 {
        expected.push(BlockKind::Data);
    }
    if !table.range_tombstones().is_empty() {
        expected.push(BlockKind::RangeTombstones);
    }
    if table.filter_shape().is_some() {
        expected.push(BlockKind::Filter);
    }
    expected.extend([BlockKind::Properties, BlockKind::Index]);
    assert_eq!(kinds, expected, "block walk order");
}

/// The model's answer to `get(user, snapshot)`: the first entry at or after
/// the lookup key, if it has that user key.
fn model_get<'a>(model: &'a [Entry], user: &[u8], snapshot: SeqNo) -> Option<&'a Entry> {
    let target = InternalKey::for_lookup(user, snapshot);
    let at = model
        .partition_point(|e| compare_internal_keys(&e.key, target.as_bytes()) == Ordering::Less);
    model.get(at).filter(|e| user_key(&e.key) == user)
}

fn check_get(table: &Table, user: &[u8], snapshot: SeqNo, expected: Option<&Option<&Entry>>) {
    let found = match table.get(user, snapshot) {
        Ok(found) => found,
        Err(e) => {
            expect_corruption("get", &e);
            assert!(expected.is_none(), "verified table: get failed: {e:?}");
            return;
        }
    };
    if let Some(f) = &found {
        assert!(
            f.seqno <= snapshot,
            "get at snapshot {snapshot} found seqno {}",
            f.seqno
        );
    }
    let Some(expected) = expected else { return };
    let as_found = (*expected).map(|e| {
        let parsed = parse_internal_key(&e.key).expect("a verified key parses");
        (parsed.seqno, parsed.kind, e.value_len, e.value_hash)
    });
    let got = found
        .as_ref()
        .map(|f: &Found| (f.seqno, f.kind, f.value.len(), xxh3_64(&f.value)));
    assert_eq!(
        got, as_found,
        "verified table: get({user:02x?}, {snapshot}) disagrees with the scan (seqno, kind, value len, value hash)"
    );
}

fn check_seek(cursor: &mut impl Cursor, target: &[u8], model: Option<&[Entry]>) {
    let first_at_or_after = model.map(|m| {
        let at = m.partition_point(|e| compare_internal_keys(&e.key, target) == Ordering::Less);
        m.get(at)
    });
    let last_at_or_before = model.map(|m| {
        let at = m.partition_point(|e| compare_internal_keys(&e.key, target) != Ordering::Greater);
        at.checked_sub(1).map(|i| &m[i])
    });
    seek_case(
        "seek",
        cursor,
        |c| c.seek(target),
        target,
        first_at_or_after,
    );
    seek_case(
        "seek_for_prev",
        cursor,
        |c| c.seek_for_prev(target),
        target,
        last_at_or_before,
    );
}

fn seek_case<C: Cursor>(
    what: &str,
    cursor: &mut C,
    op: impl FnOnce(&mut C) -> kevo_core::Result<()>,
    target: &[u8],
    expected: Option<Option<&Entry>>,
) {
    if let Err(e) = op(cursor) {
        expect_corruption(what, &e);
        assert!(
            !cursor.valid(),
            "{what}: a cursor that returned an error is valid"
        );
        assert!(expected.is_none(), "verified table: {what} failed: {e:?}");
        return;
    }
    let Some(expected) = expected else { return };
    let got = cursor.valid().then(|| Entry::of(cursor));
    assert_eq!(
        got.as_ref(),
        expected,
        "verified table: {what}({target:02x?}) disagrees with the scan"
    );
}

/// Up to [`SAMPLED_ENTRIES`] entries, evenly spaced, first and last included.
fn sample(entries: &[Entry]) -> Vec<Entry> {
    let n = entries.len();
    if n <= SAMPLED_ENTRIES {
        return entries.to_vec();
    }
    (0..SAMPLED_ENTRIES)
        .map(|i| entries[i * (n - 1) / (SAMPLED_ENTRIES - 1)].clone())
        .collect()
}

/// User keys cut out of the input: a few windows whose starts and lengths
/// come from its first bytes.
fn probe_user_keys(data: &[u8]) -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    if data.is_empty() {
        return keys;
    }
    for k in 0..4 {
        let start = usize::from(data[k % data.len()]) * 31 % data.len();
        let len = usize::from(data[(k + 4) % data.len()]) % 24;
        keys.push(data[start..(start + len).min(data.len())].to_vec());
    }
    keys
}

/// A copy of `data` with the checksums a table reader checks recomputed.
fn repair_checksums(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    let Some(footer) = bytes.len().checked_sub(FOOTER_BYTES) else {
        return bytes;
    };
    let checksum = xxh3_64(&bytes[footer..footer + FOOTER_CHECKED_BYTES]);
    bytes[footer + FOOTER_CHECKED_BYTES..footer + FOOTER_CHECKED_BYTES + 8]
        .copy_from_slice(&checksum.to_le_bytes());
    // Filter, properties, index: the footer's second, third and first handles.
    for field in [1, 2, 0] {
        let at = footer + 16 * field;
        let offset = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let size = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        seal(&mut bytes, offset, size, footer);
    }
    // The range-tombstone block, as the (repaired) properties name it.
    if let Some((offset, size)) = range_tombstone_handle(&bytes, footer) {
        seal(&mut bytes, offset, size, footer);
    }
    // Data blocks, as the index names them.
    for _ in 0..2 {
        let fs = MemFs::new();
        fs.write_file(Path::new(PATH), &bytes).expect("write_file");
        let Ok(table) = open(&fs, false) else { break };
        let mut sealed = false;
        for item in table.blocks().take(WALK_BLOCKS_MAX) {
            let Ok(info) = item else { break };
            if info.kind == BlockKind::Data && info.checksum != ChecksumStatus::Ok {
                sealed |= seal(&mut bytes, info.handle.offset, info.handle.size, footer);
            }
        }
        if !sealed {
            break;
        }
    }
    bytes
}

/// The range-tombstone block's handle, read from the properties block the
/// footer names (stored uncompressed, as the writer stores it) if the
/// footer says format version 2 and the block parses that far.
fn range_tombstone_handle(bytes: &[u8], footer: usize) -> Option<(u64, u64)> {
    let version = u32::from_le_bytes(bytes[footer + 52..footer + 56].try_into().ok()?);
    if version != 2 {
        return None;
    }
    let at = footer + 32;
    let offset = usize::try_from(u64::from_le_bytes(bytes[at..at + 8].try_into().ok()?)).ok()?;
    let size = usize::try_from(u64::from_le_bytes(bytes[at + 8..at + 16].try_into().ok()?)).ok()?;
    let properties = bytes.get(offset..offset.checked_add(size)?)?;
    let mut r = Reader::new(properties);
    for _ in 0..9 {
        r.varint64()?;
    }
    r.u8()?;
    for _ in 0..3 {
        r.varint32()?;
    }
    r.u32_le()?;
    for _ in 0..2 {
        r.length_prefixed(usize::MAX)?;
    }
    r.varint64()?; // range_tombstone_count
    Some((r.varint64()?, r.varint64()?))
}

/// Recomputes the trailer checksum of the block at `offset` of `size`
/// stored bytes, if block and trailer end by `end`; whether it changed.
fn seal(bytes: &mut [u8], offset: u64, size: u64, end: usize) -> bool {
    let trailer_end = offset
        .checked_add(size)
        .and_then(|e| e.checked_add(BLOCK_TRAILER_BYTES as u64));
    if !trailer_end.is_some_and(|e| e <= end as u64) {
        return false;
    }
    let start = offset as usize;
    let type_at = (offset + size) as usize;
    let checksum = xxh3_64(&bytes[start..=type_at]).to_le_bytes();
    let slot = &mut bytes[type_at + 1..type_at + BLOCK_TRAILER_BYTES];
    if *slot == checksum {
        return false;
    }
    slot.copy_from_slice(&checksum);
    true
}

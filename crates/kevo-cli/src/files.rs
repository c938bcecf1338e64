//! `kevo sst`, `kevo wal` and `kevo manifest`: single files, read without
//! opening a database. The table commands use `kevo-sstable`'s public API
//! alone, the WAL commands `kevo-wal`'s replay, the manifest command
//! `kevo-wal`'s record log and `kevo-manifest`'s edit decoder.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::{
    Cursor, Fs, OsFs, RANGE_DELETE_KIND, RangeTombstone, SEQNO_MAX, ValueKind,
    compare_internal_keys, encode_internal_key, parse_internal_key,
};
use kevo_manifest::{MANIFEST_MAGIC, VersionEdit, parse_manifest_file_name};
use kevo_sstable::{BlockKind, ChecksumStatus, ReadOptions, Table};
use kevo_wal::{EntryKind, RecoveryMode, RecoveryPlan, Replay};
use serde_json::{Map, Value, json};

use crate::cli::{ManifestCommand, SstCommand, WalCommand};
use crate::out::{Failure, Out, Outcome, Table as TextTable, bytes, progress, usage};
use crate::text;

fn open_table(fs: &OsFs, path: &Path) -> Result<Arc<Table>, Failure> {
    if !path.is_file() {
        return Err(usage!("{}: no such file", path.display()));
    }
    Table::open(fs, path, ReadOptions::default())
        .map(Arc::new)
        .map_err(|e| match e {
            kevo_core::Error::Corruption { .. } => Failure::Damage(e.to_string()),
            other => usage!("cannot open {}: {other}", path.display()),
        })
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Put => "put",
        ValueKind::Delete => "delete",
    }
}

/// The name of a WAL entry's kind.
fn entry_kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Put => "put",
        EntryKind::Delete => "delete",
        EntryKind::RangeDelete => "delete_range",
    }
}

/// `kevo sst …`.
pub(crate) fn sst(out: &mut Out, command: &SstCommand) -> Outcome {
    let fs = OsFs::new();
    match command {
        SstCommand::Dump { files } => each(files, |path| sst_dump(out, &fs, path, None, false)),
        SstCommand::Scan { files, limit } => {
            each(files, |path| sst_dump(out, &fs, path, *limit, true))
        }
        SstCommand::Verify { files } => sst_verify(out, &fs, files),
        SstCommand::Props { files } => each(files, |path| sst_props(out, &fs, path)),
        SstCommand::Layout { files } => each(files, |path| sst_layout(out, &fs, path)),
    }
}

/// Runs `f` on every file, going on after a failure; the worst failure
/// (damage before usage) is returned after all have run.
fn each(files: &[PathBuf], mut f: impl FnMut(&Path) -> Outcome) -> Outcome {
    let mut worst: Option<Failure> = None;
    for path in files {
        if let Err(e) = f(path) {
            eprintln!("kevo: {e}");
            worst = Some(match (worst, e) {
                (Some(Failure::Damage(d)), _) => Failure::Damage(d),
                (_, e) => e,
            });
        }
    }
    match worst {
        None => Ok(()),
        Some(Failure::Damage(_)) => Err(Failure::Damage("damage found".to_string())),
        Some(e) => Err(e),
    }
}

/// Prints a range tombstone as `kevo sst dump` shows it: the text line
/// `[start, end) @seqno delete_range`, or a JSON object with `key` (the
/// start), `end`, `seqno` and `kind: "delete_range"`.
fn dump_range_tombstone(out: &mut Out, path: &Path, tombstone: &RangeTombstone) -> Outcome {
    if out.json {
        let mut object = Map::new();
        object.insert("file".into(), json!(path.display().to_string()));
        text::to_json(&mut object, "key", &tombstone.start);
        text::to_json(&mut object, "end", &tombstone.end);
        object.insert("seqno".into(), json!(tombstone.seqno));
        object.insert("kind".into(), json!("delete_range"));
        out.json_line(&Value::Object(object))
    } else {
        out.line(format!(
            "[{}, {}) @{} delete_range",
            text::escape(&tombstone.start),
            text::escape(&tombstone.end),
            tombstone.seqno
        ))
    }
}

/// The internal key a range tombstone is stored under: its start with the
/// trailer `(seqno, RANGE_DELETE_KIND)`.
fn range_tombstone_key(tombstone: &RangeTombstone) -> Vec<u8> {
    let mut key = Vec::new();
    encode_internal_key(
        &mut key,
        &tombstone.start,
        tombstone.seqno,
        RANGE_DELETE_KIND,
    );
    key
}

/// Every entry and range tombstone, in internal-key order
/// (`visible_only`: the newest of each user key, puts only, unless a range
/// tombstone of the table deletes it, as a read of this table alone would
/// see them; no range tombstone is shown).
fn sst_dump(
    out: &mut Out,
    fs: &OsFs,
    path: &Path,
    limit: Option<u64>,
    visible_only: bool,
) -> Outcome {
    let table = open_table(fs, path)?;
    let mut cursor = table.cursor();
    cursor.seek_to_first()?;
    let limit = limit.unwrap_or(u64::MAX);
    let mut shown = 0u64;
    let mut last_user_key: Option<Vec<u8>> = None;
    let range_tombstones = Arc::clone(table.range_tombstones());
    // Range tombstones not shown yet, in the order of the table's block.
    let mut pending = range_tombstones.tombstones().peekable();
    if !out.json {
        out.line(format!("# {}", path.display()))?;
    }
    while cursor.valid() && shown < limit {
        if !visible_only {
            while let Some(tombstone) = pending.next_if(|t| {
                compare_internal_keys(&range_tombstone_key(t), cursor.key()) == Ordering::Less
            }) {
                dump_range_tombstone(out, path, &tombstone)?;
            }
        }
        let parsed = parse_internal_key(cursor.key()).ok_or_else(|| {
            Failure::Damage(format!(
                "{}: a key that is not an internal key",
                path.display()
            ))
        })?;
        let newest = last_user_key.as_deref() != Some(parsed.user_key);
        if newest {
            last_user_key = Some(parsed.user_key.to_vec());
        }
        let show = !visible_only
            || (newest
                && parsed.kind == ValueKind::Put
                && !range_tombstones.covers(parsed.user_key, parsed.seqno, SEQNO_MAX));
        if show {
            shown += 1;
            let value = cursor.value();
            if out.json {
                let mut object = Map::new();
                if !visible_only {
                    object.insert("file".into(), json!(path.display().to_string()));
                }
                text::to_json(&mut object, "key", parsed.user_key);
                if !visible_only {
                    object.insert("seqno".into(), json!(parsed.seqno));
                    object.insert("kind".into(), json!(kind_name(parsed.kind)));
                }
                if parsed.kind == ValueKind::Put {
                    text::to_json(&mut object, "value", value);
                }
                out.json_line(&Value::Object(object))?;
            } else if visible_only {
                out.line(format!(
                    "{} = {}",
                    text::escape(parsed.user_key),
                    text::escape(value)
                ))?;
            } else {
                let value = match parsed.kind {
                    ValueKind::Put => format!(" = {}", text::escape(value)),
                    ValueKind::Delete => String::new(),
                };
                out.line(format!(
                    "{} @{} {}{value}",
                    text::escape(parsed.user_key),
                    parsed.seqno,
                    kind_name(parsed.kind)
                ))?;
            }
        }
        cursor.next()?;
    }
    if !visible_only {
        for tombstone in pending {
            dump_range_tombstone(out, path, &tombstone)?;
        }
    }
    out.flush()
}

fn sst_verify(out: &mut Out, fs: &OsFs, files: &[PathBuf]) -> Outcome {
    let bar = progress(files.len() as u64, "verify");
    let mut damaged = 0usize;
    let mut rows = TextTable::new(&["file", "result", "blocks", "entries", "detail"]);
    let mut problem: Option<Failure> = None;
    for path in files {
        bar.inc(1);
        let result = open_table(fs, path).and_then(|t| t.verify().map_err(Failure::from));
        let (status, blocks, entries, detail) = match &result {
            Ok(report) => (
                "ok",
                report.data_blocks.to_string(),
                report.entries.to_string(),
                String::new(),
            ),
            Err(Failure::Damage(e)) => {
                damaged += 1;
                ("damaged", String::new(), String::new(), e.clone())
            }
            Err(Failure::Usage(e)) => ("error", String::new(), String::new(), e.clone()),
        };
        if out.json {
            let mut object = Map::new();
            object.insert("file".into(), json!(path.display().to_string()));
            object.insert("result".into(), json!(status));
            if let Ok(report) = &result {
                object.insert("data_blocks".into(), json!(report.data_blocks));
                object.insert("entries".into(), json!(report.entries));
                object.insert("tombstones".into(), json!(report.tombstones));
                object.insert("range_tombstones".into(), json!(report.range_tombstones));
            } else {
                object.insert("error".into(), json!(detail));
            }
            out.json_line(&Value::Object(object))?;
        } else {
            rows.row(vec![
                path.display().to_string(),
                status.into(),
                blocks,
                entries,
                detail,
            ]);
        }
        if let Err(Failure::Usage(e)) = result {
            problem.get_or_insert(Failure::Usage(e));
        }
    }
    bar.finish_and_clear();
    if !out.json {
        out.table(&rows)?;
    }
    out.flush()?;
    if damaged > 0 {
        return Err(Failure::Damage(format!(
            "{damaged} of {} tables damaged",
            files.len()
        )));
    }
    problem.map_or(Ok(()), Err)
}

fn sst_props(out: &mut Out, fs: &OsFs, path: &Path) -> Outcome {
    let table = open_table(fs, path)?;
    let p = table.properties();
    let footer = table.footer();
    let fields: Vec<(&str, Value)> = vec![
        ("file", json!(path.display().to_string())),
        ("file_size", json!(table.file_size())),
        ("format_version", json!(p.format_version)),
        ("entries", json!(p.entry_count)),
        ("tombstones", json!(p.tombstone_count)),
        ("range_tombstones", json!(p.range_tombstone_count)),
        ("raw_key_bytes", json!(p.raw_key_bytes)),
        ("raw_value_bytes", json!(p.raw_value_bytes)),
        ("smallest_seqno", json!(p.smallest_seqno)),
        ("largest_seqno", json!(p.largest_seqno)),
        (
            "smallest_key",
            json!(text::escape(p.smallest_key.user_key())),
        ),
        ("largest_key", json!(text::escape(p.largest_key.user_key()))),
        ("data_blocks", json!(p.data_block_count)),
        ("index_entries", json!(p.index_entry_count)),
        ("compression", json!(format!("{:?}", p.compression))),
        ("block_bytes_target", json!(p.block_bytes_target)),
        ("restart_interval", json!(p.restart_interval)),
        ("bloom_bits_per_key", json!(p.bloom_bits_per_key)),
        ("created_unix_s", json!(p.creation_time_unix_s)),
        ("index_type", json!(format!("{:?}", footer.index_type))),
        ("filter_type", json!(format!("{:?}", footer.filter_type))),
    ];
    if out.json {
        let object: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.json_line(&Value::Object(object))
    } else {
        let mut rows = TextTable::new(&["property", "value"]);
        for (name, value) in fields {
            let shown = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            rows.row(vec![name.to_string(), shown]);
        }
        out.table(&rows)?;
        out.line("")
    }
}

fn block_kind(kind: BlockKind) -> &'static str {
    match kind {
        BlockKind::Data => "data",
        BlockKind::RangeTombstones => "range_tombstones",
        BlockKind::Filter => "filter",
        BlockKind::Properties => "properties",
        BlockKind::Index => "index",
    }
}

fn sst_layout(out: &mut Out, fs: &OsFs, path: &Path) -> Outcome {
    let table = open_table(fs, path)?;
    let mut rows = TextTable::new(&[
        "kind",
        "offset",
        "size",
        "uncompressed",
        "compression",
        "checksum",
    ]);
    let mut bad = 0usize;
    for block in table.blocks() {
        let block = block?;
        let checksum = match block.checksum {
            ChecksumStatus::Ok => "ok".to_string(),
            ChecksumStatus::Mismatch { stored, computed } => {
                bad += 1;
                format!("MISMATCH stored {stored:016x} computed {computed:016x}")
            }
        };
        let compression = block
            .compression
            .map_or("unknown".to_string(), |c| format!("{c:?}"));
        if out.json {
            out.json_line(&json!({
                "file": path.display().to_string(),
                "kind": block_kind(block.kind),
                "offset": block.handle.offset,
                "size": block.handle.size,
                "uncompressed": block.uncompressed_bytes,
                "compression": compression,
                "checksum_ok": block.checksum == ChecksumStatus::Ok,
            }))?;
        } else {
            rows.row(vec![
                block_kind(block.kind).into(),
                block.handle.offset.to_string(),
                block.handle.size.to_string(),
                block
                    .uncompressed_bytes
                    .map_or(String::new(), |u| u.to_string()),
                compression,
                checksum,
            ]);
        }
    }
    if !out.json {
        out.line(format!(
            "# {} ({}; footer {} bytes at {})",
            path.display(),
            bytes(table.file_size()),
            kevo_sstable::FOOTER_BYTES,
            table
                .file_size()
                .saturating_sub(kevo_sstable::FOOTER_BYTES as u64)
        ))?;
        out.table(&rows)?;
    }
    out.flush()?;
    if bad > 0 {
        return Err(Failure::Damage(format!(
            "{}: {bad} blocks fail their checksum",
            path.display()
        )));
    }
    Ok(())
}

/// The segment number and directory of a WAL segment's path.
fn segment_of(path: &Path) -> Result<(PathBuf, u64), Failure> {
    if !path.is_file() {
        return Err(usage!("{}: no such file", path.display()));
    }
    let number = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".wal"))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            usage!(
                "{}: a WAL segment is named NNNNNN.wal (its number is checked against its header)",
                path.display()
            )
        })?;
    Ok((kevo_core::fs::parent_dir(path), number))
}

/// `kevo wal …`.
pub(crate) fn wal(out: &mut Out, command: &WalCommand) -> Outcome {
    match command {
        WalCommand::Dump { files } => each(files, |path| wal_read(out, path, true)),
        WalCommand::Verify { files } => each(files, |path| wal_read(out, path, false)),
    }
}

/// Reads one segment, salvaging past damage; `dump` prints every batch.
/// Damage before the tail is a failure; a torn tail is reported only.
fn wal_read(out: &mut Out, path: &Path, dump: bool) -> Outcome {
    let (dir, number) = segment_of(path)?;
    let fs: Arc<dyn Fs> = Arc::new(OsFs::new());
    let plan = RecoveryPlan {
        segments: vec![number],
        ..RecoveryPlan::default()
    };
    let mut replay = Replay::with_plan(fs, &dir, RecoveryMode::SkipCorrupted, plan);
    let (mut batches, mut entries) = (0u64, 0u64);
    if dump && !out.json {
        out.line(format!("# {}", path.display()))?;
    }
    for item in replay.by_ref() {
        let replayed = item.map_err(|e| match e {
            kevo_wal::Error::Corruption { .. } | kevo_wal::Error::FileCorruption { .. } => {
                Failure::Damage(e.to_string())
            }
            other => usage!("{}: {other}", path.display()),
        })?;
        batches += 1;
        entries += replayed.batch.len() as u64;
        if !dump {
            continue;
        }
        let first = replayed.batch.seqno();
        if out.json {
            let items: Vec<Value> = replayed
                .batch
                .iter()
                .map(|e| {
                    let mut object = Map::new();
                    object.insert("keyspace".into(), json!(e.keyspace));
                    object.insert("kind".into(), json!(entry_kind_name(e.kind)));
                    text::to_json(&mut object, "key", e.key);
                    match e.kind {
                        EntryKind::Put => text::to_json(&mut object, "value", e.value),
                        EntryKind::RangeDelete => text::to_json(&mut object, "end", e.value),
                        EntryKind::Delete => {}
                    }
                    Value::Object(object)
                })
                .collect();
            out.json_line(&json!({
                "file": path.display().to_string(),
                "offset": replayed.offset,
                "seqno": first,
                "entries": items,
            }))?;
        } else {
            out.line(format!(
                "batch at offset {}: seqnos {}..={} ({} entries)",
                replayed.offset,
                first,
                first + (replayed.batch.len() as u64).saturating_sub(1),
                replayed.batch.len()
            ))?;
            for e in replayed.batch.iter() {
                let value = match e.kind {
                    EntryKind::Put => format!(" = {}", text::escape(e.value)),
                    EntryKind::RangeDelete => format!(" .. {}", text::escape(e.value)),
                    EntryKind::Delete => String::new(),
                };
                let keyspace = if e.keyspace == kevo_core::DEFAULT_KEYSPACE {
                    String::new()
                } else {
                    format!(" [keyspace {}]", e.keyspace)
                };
                out.line(format!(
                    "  {}{keyspace} {}{value}",
                    entry_kind_name(e.kind),
                    text::escape(e.key)
                ))?;
            }
        }
    }
    let report = replay.report().clone();
    // SkipCorrupted reports a torn tail as a skipped range at the end of
    // the file: it is what a crash leaves, not damage.
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (tail, damage): (Vec<_>, Vec<_>) = report
        .skipped
        .iter()
        .partition(|s| s.offset + s.len >= file_len && report.skipped.len() == 1);
    let torn = report.tail_bytes_dropped + tail.iter().map(|s| s.len).sum::<u64>();
    if out.json {
        let damage_json: Vec<Value> = damage
            .iter()
            .map(|s| json!({"offset": s.offset, "len": s.len, "reason": s.reason}))
            .collect();
        if !dump || !damage.is_empty() {
            let follows = report
                .predecessors
                .first()
                .map(|&(_, previous, len)| json!({"segment": previous, "len": len}));
            out.json_line(&json!({
                "file": path.display().to_string(),
                "segment": number,
                "follows": follows,
                "batches": batches,
                "entries": entries,
                "torn_tail_bytes": torn,
                "damage": damage_json,
            }))?;
        }
    } else {
        for s in &damage {
            out.line(format!(
                "{}: DAMAGED at offset {} ({} bytes skipped): {}",
                path.display(),
                s.offset,
                s.len,
                s.reason
            ))?;
        }
        let tail = if torn > 0 {
            format!(", torn tail of {torn} bytes (what a crash leaves)")
        } else {
            String::new()
        };
        // A segment started by a rotation names the one before it.
        let follows = report
            .predecessors
            .first()
            .map_or(String::new(), |&(_, previous, len)| {
                format!(" (follows segment {previous}, which ended at {len} bytes)")
            });
        out.line(format!(
            "{}: {batches} batches, {entries} entries{tail}{follows}{}",
            path.display(),
            if damage.is_empty() { "" } else { ", DAMAGED" }
        ))?;
    }
    out.flush()?;
    if damage.is_empty() {
        Ok(())
    } else {
        Err(Failure::Damage(format!(
            "{}: damaged at offset {}",
            path.display(),
            damage[0].offset
        )))
    }
}

/// `kevo manifest …`.
pub(crate) fn manifest(out: &mut Out, command: &ManifestCommand) -> Outcome {
    let ManifestCommand::Dump { file } = command;
    let edits = read_manifest(file)?;
    for (offset, edit) in &edits {
        if out.json {
            out.json_line(&edit_json(*offset, edit))?;
        } else {
            out.line(edit_text(*offset, edit))?;
        }
    }
    out.flush()
}

/// Every edit of the manifest at `path`, with its file offset.
///
/// # Errors
/// [`Failure::Damage`] at the first damaged record (with its offset);
/// [`Failure::Usage`] if the file cannot be read or is not a manifest.
pub(crate) fn read_manifest(path: &Path) -> Result<Vec<(u64, VersionEdit)>, Failure> {
    let number = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_manifest_file_name)
        .ok_or_else(|| usage!("{}: a manifest is named MANIFEST-NNNNNN", path.display()))?;
    let fs = OsFs::new();
    let file = fs
        .open_read(path)
        .map_err(|e| usage!("cannot open {}: {e}", path.display()))?;
    let mut reader = kevo_wal::log::LogReader::open(file, path, number, MANIFEST_MAGIC)
        .map_err(|e| usage!("{e}"))?;
    let mut edits = Vec::new();
    loop {
        let record = reader.read_record().map_err(|e| match e {
            kevo_wal::Error::Io { .. } => usage!("{e}"),
            other => Failure::Damage(other.to_string()),
        })?;
        let Some(record) = record else { break };
        let edit = VersionEdit::decode(&record.bytes).map_err(|reason| {
            Failure::Damage(format!(
                "{}: the edit at offset {} does not decode: {reason}",
                path.display(),
                record.offset
            ))
        })?;
        edits.push((record.offset, edit));
    }
    if let Some(kevo_wal::log::LogEnd::TornTail {
        offset,
        bytes_dropped,
        reason,
    }) = reader.end()
    {
        eprintln!(
            "{}: a torn tail of {bytes_dropped} bytes at offset {offset} ({reason}); a crash during an append leaves one",
            path.display()
        );
    }
    Ok(edits)
}

fn edit_json(offset: u64, edit: &VersionEdit) -> Value {
    let added: Vec<Value> = edit
        .added
        .iter()
        .map(|(level, t)| {
            json!({
                "level": level,
                "number": t.number,
                "file_size": t.file_size,
                "smallest_key": text::escape(t.smallest_user_key()),
                "largest_key": text::escape(t.largest_user_key()),
                "smallest_seqno": t.smallest_seqno,
                "largest_seqno": t.largest_seqno,
                "entries": t.entries,
                "tombstones": t.tombstones,
            })
        })
        .collect();
    let removed: Vec<Value> = edit
        .removed
        .iter()
        .map(|(level, number)| json!({"level": level, "number": number}))
        .collect();
    json!({
        "offset": offset,
        "keyspace": edit.keyspace,
        "keyspace_created": edit.keyspace_created,
        "keyspace_dropped": edit.keyspace_dropped,
        "keyspace_log_number": edit.keyspace_log_number,
        "next_keyspace_id": edit.next_keyspace_id,
        "added": added,
        "removed": removed,
        "next_file_number": edit.next_file_number,
        "last_seqno": edit.last_seqno,
        "log_number": edit.log_number,
        "wal_segments_added": edit.wal_segments_added,
        "wal_segments_sealed": edit.wal_segments_sealed,
        "unexplained_tables": edit.unexplained_tables,
    })
}

fn edit_text(offset: u64, edit: &VersionEdit) -> String {
    let mut parts = Vec::new();
    if edit.keyspace != kevo_core::DEFAULT_KEYSPACE {
        parts.push(format!("keyspace {}", edit.keyspace));
    }
    if let Some(name) = &edit.keyspace_created {
        parts.push(format!("created `{name}`"));
    }
    if edit.keyspace_dropped {
        parts.push("dropped".to_string());
    }
    if let Some(n) = edit.keyspace_log_number {
        parts.push(format!("keyspace log_number={n}"));
    }
    if let Some(n) = edit.log_number {
        parts.push(format!("log_number={n}"));
    }
    if let Some(n) = edit.next_file_number {
        parts.push(format!("next_file={n}"));
    }
    if let Some(n) = edit.last_seqno {
        parts.push(format!("last_seqno={n}"));
    }
    for s in &edit.wal_segments_added {
        parts.push(format!("+wal {s}"));
    }
    for (s, len) in &edit.wal_segments_sealed {
        parts.push(format!("sealed wal {s} at {len}"));
    }
    for (level, number) in &edit.removed {
        parts.push(format!("-L{level} #{number}"));
    }
    for (level, t) in &edit.added {
        parts.push(format!(
            "+L{level} #{} {} [{} .. {}] seqnos {}..={}",
            t.number,
            bytes(t.file_size),
            text::escape(t.smallest_user_key()),
            text::escape(t.largest_user_key()),
            t.smallest_seqno,
            t.largest_seqno
        ));
    }
    for n in &edit.unexplained_tables {
        parts.push(format!("unexplained #{n}"));
    }
    format!("@{offset}: {}", parts.join(", "))
}

//! A table dump tool built on `kevo-sstable`'s public API alone (and
//! `kevo-core`, which it re-uses): what `kevo sst dump` and `kevo sst
//! verify` do, in one small file.
//!
//! ```text
//! cargo run -p kevo-sstable --example sst_dump -- path/to/000012.sst [--verify]
//! ```
//!
//! Prints the properties, every block with its checksum status, every
//! range tombstone (`[start, end) @seqno delete_range`) and every entry
//! (`user key @seqno kind = value`, bytes outside printable ASCII as
//! `\xHH`); with `--verify`, checks every block and entry instead of
//! printing entries. Exits 1 on damage, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use kevo_core::{Cursor, OsFs, ValueKind, parse_internal_key};
use kevo_sstable::{ChecksumStatus, ReadOptions, Table};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verify = args.iter().any(|a| a == "--verify");
    let files: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        eprintln!("usage: sst_dump FILE.sst... [--verify]");
        return ExitCode::from(2);
    }
    let mut code = ExitCode::SUCCESS;
    for file in &files {
        if let Err(e) = dump(file, verify) {
            eprintln!("{}: {e}", file.display());
            code = ExitCode::from(match e {
                kevo_core::Error::Corruption { .. } => 1,
                _ => 2,
            });
        }
    }
    code
}

fn dump(path: &std::path::Path, verify: bool) -> kevo_core::Result<()> {
    let table = std::sync::Arc::new(Table::open(&OsFs::new(), path, ReadOptions::default())?);
    let p = table.properties();
    println!(
        "{}: {} bytes, format version {}, {} entries ({} tombstones), {} range tombstones, \
         seqnos {}..={}, {} data blocks, {:?}",
        path.display(),
        table.file_size(),
        p.format_version,
        p.entry_count,
        p.tombstone_count,
        p.range_tombstone_count,
        p.smallest_seqno,
        p.largest_seqno,
        p.data_block_count,
        p.compression
    );
    for block in table.blocks() {
        let block = block?;
        let status = match block.checksum {
            ChecksumStatus::Ok => "ok".to_string(),
            ChecksumStatus::Mismatch { stored, computed } => {
                format!("BAD (stored {stored:016x}, computed {computed:016x})")
            }
        };
        println!(
            "  {:?} block at {} ({} bytes): checksum {status}",
            block.kind, block.handle.offset, block.handle.size
        );
    }
    if verify {
        let report = table.verify()?;
        println!(
            "verified: {} data blocks, {} entries, {} range tombstones",
            report.data_blocks, report.entries, report.range_tombstones
        );
        return Ok(());
    }
    for t in table.range_tombstones().tombstones() {
        println!(
            "[{}, {}) @{} delete_range",
            escape(&t.start),
            escape(&t.end),
            t.seqno
        );
    }
    let mut cursor = table.cursor();
    cursor.seek_to_first()?;
    while cursor.valid() {
        let Some(key) = parse_internal_key(cursor.key()) else {
            // The cursor cannot say which block it is in; the verify walk can.
            return Err(kevo_core::Error::corruption(
                path,
                0,
                "a key that is not an internal key (run with --verify for its block)",
            ));
        };
        match key.kind {
            ValueKind::Put => println!(
                "{} @{} put = {}",
                escape(key.user_key),
                key.seqno,
                escape(cursor.value())
            ),
            ValueKind::Delete => println!("{} @{} delete", escape(key.user_key), key.seqno),
        }
        cursor.next()?;
    }
    Ok(())
}

/// Printable ASCII as is, anything else as `\xHH`.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

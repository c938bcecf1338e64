//! Append, then replay: the log gives back exactly what was appended.
//!
//! The input is decoded into a list of batches (see `kevo_fuzz::decode` for
//! the byte layout: length-prefixed keys, values made by repeating a short
//! pattern so that records can span 32 KiB blocks). They are appended to a
//! fresh `Wal` on a `MemFs` (`SyncMode::None`, small segments so that
//! rotation happens), the `Wal` is dropped, and the log is replayed under
//! each recovery mode. What must hold:
//!
//! - every append succeeds, at strictly increasing positions;
//! - each replay returns exactly the appended batches, in order, each at the
//!   segment and offset its append returned; nothing trimmed or skipped; the
//!   report counts them and names every segment from 1 to the last;
//! - a segment holding more than one record is no larger than `segment_bytes`;
//! - `Wal::open` replays the same batches and `finish` opens the next segment.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, MemFs};
use kevo_fuzz::{DIR, MODES, Op, assert_clean, assert_replayed, decode, replay_all};
use kevo_wal::{Wal, WalPosition, segment_file_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = decode(data, false);
    let options = script.options;
    let dir = Path::new(DIR);
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());

    let (wal, report) = Wal::open(fs.clone(), dir, options.clone())
        .expect("open")
        .finish()
        .expect("finish on an empty directory");
    assert_eq!(report.batches, 0);
    assert_eq!(wal.current_segment(), 1);

    let mut expected = Vec::new();
    let mut prev: Option<WalPosition> = None;
    for op in script.ops {
        let Op::Append(batch) = op else {
            unreachable!("no lifecycle ops without the flag")
        };
        let pos = wal.append(&batch).expect("append");
        if let Some(p) = prev {
            assert!(
                (p.segment, p.offset) < (pos.segment, pos.offset),
                "positions go backwards: {p:?} then {pos:?}"
            );
        }
        prev = Some(pos);
        expected.push((pos, batch));
    }
    let last_segment = wal.current_segment();
    drop(wal);

    // Segment sizes: rotation keeps several records within segment_bytes.
    for segment in 1..=last_segment {
        let records = expected
            .iter()
            .filter(|(p, _)| p.segment == segment)
            .count();
        let len = fs
            .open_read(&dir.join(segment_file_name(segment)))
            .expect("every segment up to the current one exists")
            .len()
            .expect("len");
        if records > 1 {
            assert!(
                len <= options.segment_bytes,
                "segment {segment} holds {records} records in {len} bytes"
            );
        }
    }

    for mode in MODES {
        let (replayed, report) = replay_all(&fs, mode);
        assert_clean(&report, mode);
        assert_eq!(replayed.len(), expected.len(), "{mode:?}: batch count");
        for (got, (pos, batch)) in replayed.iter().zip(&expected) {
            assert_replayed(&format!("{mode:?}"), got, pos, batch);
        }
        assert_eq!(report.batches, expected.len() as u64);
        assert_eq!(
            report.segments,
            (1..=last_segment).collect::<Vec<_>>(),
            "{mode:?}: segments"
        );
    }

    // Recovery through the Wal itself, then it appends in a new segment.
    let mut recovery = Wal::open(fs.clone(), dir, options).expect("reopen");
    let recovered: Vec<_> = recovery
        .by_ref()
        .collect::<Result<_, _>>()
        .expect("recovery of a clean log");
    assert_eq!(recovered.len(), expected.len());
    for (got, (pos, batch)) in recovered.iter().zip(&expected) {
        assert_replayed("Wal::open", got, pos, batch);
    }
    let (wal, report) = recovery.finish().expect("finish");
    assert_clean(&report, kevo_wal::RecoveryMode::TolerateTornTail);
    assert_eq!(wal.current_segment(), last_segment + 1);
});

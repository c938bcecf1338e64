//! Replay of an arbitrary segment file.
//!
//! The input is the whole content of segment `000001.wal` (placed durable in
//! a `MemFs`); it is replayed under each of the three recovery modes and the
//! iterator drained. What must hold for *any* input:
//!
//! - nothing panics (overflow checks are on in `cargo fuzz` builds);
//! - every `Ok` item is a well-formed batch of segment 1 inside the file: its
//!   bytes decode again to the same batch and its entries iterate, exactly
//!   `len()` of them; rebuilt with `put_in` / `delete_in` (each entry in its
//!   keyspace) it has the same entries in at most as many bytes; after an
//!   `Err` the iterator yields nothing more;
//! - the report agrees with what was returned (batch count, `last_seqno`,
//!   segments read);
//! - `TolerateTornTail`: `tail_bytes_dropped <= input.len()`, and a torn tail
//!   runs to the end of the file;
//! - `AbsoluteConsistency`: nothing trimmed or skipped;
//! - `SkipCorrupted`: the only possible errors are an unsupported format
//!   version (a `Corruption` naming it) and I/O; the skipped ranges are in
//!   order, disjoint, inside the file, miss every returned batch, and their
//!   lengths sum to at most `input.len()`;
//! - across modes: `TolerateTornTail` and `AbsoluteConsistency` return the same
//!   batches (both stop at the first damage), which are a prefix of what
//!   `SkipCorrupted` returns; `AbsoluteConsistency` succeeds exactly when
//!   `TolerateTornTail` succeeds without trimming; when `TolerateTornTail`
//!   succeeds, `SkipCorrupted` returns the same batches and skips exactly the
//!   trimmed bytes.
//! - sealed (a `RecoveryPlan` naming segment 1 sealed at a length): sealed at
//!   exactly where `TolerateTornTail`'s records end, the same batches come
//!   back; sealed past it, the replay is `Corruption` (a sealed segment is
//!   never torn, never shorter); sealed before it, what comes back is a
//!   prefix of those batches, ending exactly at the sealed length (for
//!   lengths past the segment header: the engine seals nothing shorter).
#![no_main]

use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, KEY_BYTES_MAX, MemFs, VALUE_BYTES_MAX};
use kevo_fuzz::check_reencodes;
use kevo_wal::{
    Batch, EntryKind, Error, FRAGMENT_HEADER_BYTES, RecoveryMode, RecoveryPlan, Replay,
    ReplayReport, ReplayedBatch, SEGMENT_HEADER_BYTES, segment_file_name,
};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/wal";

struct Outcome {
    batches: Vec<ReplayedBatch>,
    error: Option<Error>,
    report: ReplayReport,
}

fn replay(fs: &Arc<dyn Fs>, mode: RecoveryMode, input_len: u64) -> Outcome {
    let mut replay =
        Replay::open(fs.clone(), Path::new(DIR), mode, 0).expect("listing a MemFs directory");
    assert_eq!(replay.segments(), &[1]);
    let mut batches = Vec::new();
    let mut error = None;
    for item in replay.by_ref() {
        assert!(
            error.is_none(),
            "{mode:?}: an item after the error {error:?}"
        );
        match item {
            Ok(b) => {
                check_batch(&b, input_len);
                batches.push(b);
            }
            Err(e) => {
                // Formatting an error must not panic either.
                let _ = e.to_string();
                error = Some(e);
            }
        }
    }
    assert!(replay.next().is_none(), "{mode:?}: the replay is not fused");
    let report = replay.report().clone();

    assert_eq!(
        report.batches,
        batches.len() as u64,
        "{mode:?}: report.batches"
    );
    let last = batches
        .iter()
        .filter(|b| !b.batch.is_empty())
        .map(|b| u128::from(b.batch.seqno()) + b.batch.len() as u128 - 1)
        .max();
    assert_eq!(
        report.last_seqno.map(u128::from),
        last,
        "{mode:?}: report.last_seqno"
    );
    // The segment is opened by the first step, even when it is empty.
    assert_eq!(report.segments, vec![1], "{mode:?}: report.segments");
    // Batches come in file order.
    assert!(
        batches.windows(2).all(|w| w[0].offset < w[1].offset),
        "{mode:?}: batches out of order"
    );
    Outcome {
        batches,
        error,
        report,
    }
}

fn check_batch(b: &ReplayedBatch, input_len: u64) {
    assert_eq!(b.segment, 1);
    assert!(
        b.offset >= SEGMENT_HEADER_BYTES as u64,
        "batch at {} inside the segment header",
        b.offset
    );
    let bytes = b.batch.as_bytes();
    assert!(
        b.offset + (FRAGMENT_HEADER_BYTES + bytes.len()) as u64 <= input_len,
        "batch at {} of {} bytes does not fit in a file of {input_len} bytes",
        b.offset,
        bytes.len()
    );
    let again = Batch::decode(bytes).expect("a replayed batch decodes again");
    assert_eq!(again, b.batch);
    let mut n = 0;
    for e in b.batch.iter() {
        n += 1;
        assert!(e.key.len() <= KEY_BYTES_MAX);
        assert!(e.value.len() <= VALUE_BYTES_MAX);
        match e.kind {
            EntryKind::Delete => assert!(e.value.is_empty()),
            EntryKind::RangeDelete => assert!(e.value.len() <= KEY_BYTES_MAX),
            EntryKind::Put => {}
        }
    }
    assert_eq!(n, b.batch.len(), "entries iterated vs batch.len()");
    assert_eq!(b.batch.iter().size_hint(), (n, Some(n)));
    check_reencodes(&b.batch, bytes);
}

fn is_unsupported_version(e: &Error) -> bool {
    matches!(e, Error::Corruption { reason, .. } if reason.contains("unsupported segment format version"))
}

fuzz_target!(|data: &[u8]| {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let dir = Path::new(DIR);
    fs.create_dir_all(dir).expect("mkdir");
    mem.write_file(&dir.join(segment_file_name(1)), data)
        .expect("write_file");
    let len = data.len() as u64;

    // TolerateTornTail.
    let torn = replay(&fs, RecoveryMode::TolerateTornTail, len);
    let r = &torn.report;
    assert!(
        r.tail_bytes_dropped <= len,
        "tail_bytes_dropped {} > input {len}",
        r.tail_bytes_dropped
    );
    assert!(r.skipped.is_empty());
    match r.torn_tail {
        Some((segment, offset)) => {
            assert_eq!(segment, 1);
            assert_eq!(
                offset + r.tail_bytes_dropped,
                len,
                "a torn tail must run to the end of the file"
            );
            assert!(
                torn.error.is_none(),
                "torn tail trimmed and an error too: {:?}",
                torn.error
            );
            if let Some(b) = torn.batches.last() {
                assert!(
                    b.offset < offset,
                    "batch at {} is after the torn tail at {offset}",
                    b.offset
                );
            }
        }
        None => assert_eq!(r.tail_bytes_dropped, 0),
    }

    // AbsoluteConsistency.
    let strict = replay(&fs, RecoveryMode::AbsoluteConsistency, len);
    let r = &strict.report;
    assert_eq!(r.tail_bytes_dropped, 0);
    assert_eq!(r.torn_tail, None);
    assert!(r.skipped.is_empty());
    if let Some(e) = &strict.error {
        assert!(
            e.is_corruption() || matches!(e, Error::Io { .. }),
            "AbsoluteConsistency: {e:?}"
        );
    }

    // SkipCorrupted.
    let salvage = replay(&fs, RecoveryMode::SkipCorrupted, len);
    let r = &salvage.report;
    if let Some(e) = &salvage.error {
        assert!(
            matches!(e, Error::Io { .. }) || is_unsupported_version(e),
            "SkipCorrupted returned an error it should have skipped: {e:?}"
        );
    }
    assert_eq!(r.tail_bytes_dropped, 0);
    assert_eq!(r.torn_tail, None);
    let mut skipped_total: u64 = 0;
    let mut prev_end = 0;
    for s in &r.skipped {
        assert_eq!(s.segment, 1);
        assert!(
            s.offset >= prev_end,
            "skipped ranges overlap or go backwards: {:?}",
            r.skipped
        );
        let end = s
            .offset
            .checked_add(s.len)
            .expect("skipped range overflows");
        assert!(
            end <= len,
            "skipped range {s:?} past the end of a {len}-byte file"
        );
        assert!(
            salvage
                .batches
                .iter()
                .all(|b| b.offset < s.offset || b.offset >= end),
            "a returned batch lies inside skipped range {s:?}"
        );
        prev_end = end;
        skipped_total += s.len;
    }
    assert!(
        skipped_total <= len,
        "skipped {skipped_total} bytes of a {len}-byte file"
    );

    // Across modes.
    assert_eq!(
        torn.batches, strict.batches,
        "TolerateTornTail and AbsoluteConsistency differ before the first damage"
    );
    assert_eq!(
        strict.error.is_none(),
        torn.error.is_none() && torn.report.torn_tail.is_none(),
        "AbsoluteConsistency ok = {:?}, TolerateTornTail ok = {:?} torn_tail = {:?}",
        strict.error,
        torn.error,
        torn.report.torn_tail
    );
    assert!(
        salvage.batches.starts_with(&strict.batches),
        "SkipCorrupted does not start with the batches before the first damage"
    );
    if strict.error.is_none() {
        assert_eq!(salvage.batches, strict.batches);
        assert!(
            salvage.report.skipped.is_empty(),
            "clean log, yet skipped {:?}",
            salvage.report.skipped
        );
    }
    if torn.error.is_none() {
        assert!(
            salvage.error.is_none(),
            "TolerateTornTail ok, SkipCorrupted: {:?}",
            salvage.error
        );
        assert_eq!(salvage.batches, torn.batches);
        assert_eq!(skipped_total, torn.report.tail_bytes_dropped);
    }

    // Sealed. The engine seals only segments whose header it synced, so
    // only lengths past the header are asked about.
    let header = SEGMENT_HEADER_BYTES as u64;
    if torn.error.is_none() {
        let end = torn
            .report
            .segment_ends
            .first()
            .map(|&(segment, end)| {
                assert_eq!(segment, 1);
                end
            })
            .expect("the segment's end is reported");
        for sealed in [end, end + 1, end / 2].into_iter().filter(|&s| s >= header) {
            let plan = RecoveryPlan {
                segments: vec![1],
                sealed: [(1, sealed)].into_iter().collect(),
                headers_durable: true,
                seals_tracked: true,
            };
            let mut replay =
                Replay::with_plan(fs.clone(), dir, RecoveryMode::TolerateTornTail, plan);
            let mut batches = Vec::new();
            let mut error = None;
            for item in replay.by_ref() {
                match item {
                    Ok(b) => batches.push(b),
                    Err(e) => error = Some(e),
                }
            }
            if sealed == end {
                assert!(error.is_none(), "sealed at its end: {error:?}");
                assert_eq!(batches, torn.batches);
            } else if sealed > end {
                assert!(
                    error.as_ref().is_some_and(Error::is_corruption),
                    "sealed past its records: {error:?}"
                );
            } else if error.is_none() {
                assert!(torn.batches.starts_with(&batches));
                assert_eq!(replay.report().segment_ends, vec![(1, sealed)]);
            }
            if error.is_none() {
                assert_eq!(
                    replay.report().torn_tail,
                    None,
                    "a sealed segment was trimmed"
                );
            }
        }
    }
});

//! Replaying the log: every intact batch, in order, under a recovery mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::Fs;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::format::{
    BATCH_BYTES_MAX, FRAGMENT_HEADER_BYTES, FragmentType, parse_segment_file_name,
    segment_file_name,
};
use crate::reader::{SegmentReader, Step};
use crate::wal::RecoveryPlan;

/// How replay treats damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// The default. An incomplete or damaged record at the very end of the
    /// last segment is what a crash leaves behind: it is trimmed and its
    /// size reported. Damage anywhere else is [`Error::Corruption`].
    #[default]
    TolerateTornTail,
    /// Any damage, a torn tail included, is [`Error::Corruption`].
    AbsoluteConsistency,
    /// Salvage every intact record: damaged ranges are skipped and reported
    /// in [`ReplayReport::skipped`]. Only a segment of an unknown format
    /// version is still an error.
    SkipCorrupted,
}

/// One batch read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedBatch {
    /// The segment it was read from.
    pub segment: u64,
    /// File offset of its first fragment.
    pub offset: u64,
    /// The batch; `batch.seqno()` is its first sequence number.
    pub batch: Batch,
}

/// A damaged byte range that [`RecoveryMode::SkipCorrupted`] skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    /// The segment.
    pub segment: u64,
    /// First skipped byte.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// What was wrong at `offset`.
    pub reason: String,
}

/// What a replay found, complete once the replay is exhausted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments read, in order.
    pub segments: Vec<u64>,
    /// Batches returned.
    pub batches: u64,
    /// The highest sequence number used by a returned batch (its last entry).
    pub last_seqno: Option<u64>,
    /// Bytes dropped from the end of the last segment (a torn tail); 0 if the
    /// log ended cleanly.
    pub tail_bytes_dropped: u64,
    /// Where the torn tail began: `(segment, offset)`. Appending must resume
    /// from a new segment, after truncating this one there.
    pub torn_tail: Option<(u64, u64)>,
    /// Damaged ranges skipped under [`RecoveryMode::SkipCorrupted`].
    pub skipped: Vec<SkippedRange>,
    /// For each segment read, in order: where its last intact record ends
    /// (after a torn tail is trimmed, where the trim cuts). A segment
    /// sealed at that length holds exactly what was replayed.
    pub segment_ends: Vec<(u64, u64)>,
}

/// Reads the log's segments in order and returns every intact batch.
///
/// An `Iterator<Item = Result<ReplayedBatch>>`; after the first `Err` it
/// returns `None`. When it is exhausted, [`Replay::report`] says what was
/// trimmed or skipped.
#[derive(Debug)]
pub struct Replay {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    mode: RecoveryMode,
    segments: Vec<u64>,
    next_segment: usize,
    reader: Option<(u64, SegmentReader)>,
    /// The record being assembled and the offset of its first fragment.
    partial: Option<(u64, Vec<u8>)>,
    /// Sealed segments and their lengths (see [`RecoveryPlan::sealed`]).
    sealed: BTreeMap<u64, u64>,
    /// See [`RecoveryPlan::headers_durable`].
    headers_durable: bool,
    /// End of the last complete record read in the current segment.
    record_end: u64,
    report: ReplayReport,
    done: bool,
}

impl Replay {
    /// Starts a replay of the segments in `dir` numbered `min_segment` or
    /// higher.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, mode: RecoveryMode, min_segment: u64) -> Result<Self> {
        let names = fs
            .list_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut segments: Vec<u64> = names
            .iter()
            .filter_map(|name| parse_segment_file_name(name))
            .filter(|&n| n >= min_segment)
            .collect();
        segments.sort_unstable();
        Ok(Self::with_plan(
            fs,
            dir,
            mode,
            RecoveryPlan {
                segments,
                ..RecoveryPlan::default()
            },
        ))
    }

    /// Starts a replay of exactly the segments of `plan`, in order, treating
    /// its sealed segments as such: each is read up to its sealed length,
    /// and may neither end early nor hold damage before that length (see
    /// [`RecoveryPlan`]).
    pub fn with_plan(fs: Arc<dyn Fs>, dir: &Path, mode: RecoveryMode, plan: RecoveryPlan) -> Self {
        let mut segments = plan.segments;
        segments.sort_unstable();
        segments.dedup();
        Replay {
            fs,
            dir: dir.to_path_buf(),
            mode,
            segments,
            next_segment: 0,
            reader: None,
            partial: None,
            sealed: plan.sealed,
            headers_durable: plan.headers_durable,
            record_end: 0,
            report: ReplayReport::default(),
            done: false,
        }
    }

    /// What the replay found so far (complete once it is exhausted).
    pub fn report(&self) -> &ReplayReport {
        &self.report
    }

    /// The segment numbers this replay reads, in order.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    fn is_last_segment(&self) -> bool {
        self.next_segment == self.segments.len()
    }

    fn open_next_segment(&mut self) -> Result<bool> {
        let Some(&segment) = self.segments.get(self.next_segment) else {
            return Ok(false);
        };
        if let Some(&prev) = self.report.segments.last()
            && segment != prev + 1
            && self.mode != RecoveryMode::SkipCorrupted
        {
            return Err(Error::Corruption {
                segment: prev + 1,
                offset: 0,
                reason: format!(
                    "segment {} is missing (found {segment} after {prev})",
                    prev + 1
                ),
            });
        }
        self.next_segment += 1;
        let path = self.dir.join(segment_file_name(segment));
        let context = || format!("reading {}", path.display());
        let file = self
            .fs
            .open_read(&path)
            .map_err(|e| Error::io(context(), e))?;
        let mut reader = SegmentReader::open(file, segment).map_err(|e| Error::io(context(), e))?;
        self.report.segments.push(segment);
        self.record_end = reader.records_start();
        if let Some(&sealed) = self.sealed.get(&segment) {
            if reader.len() < sealed && self.mode != RecoveryMode::SkipCorrupted {
                return Err(corruption(
                    segment,
                    reader.len(),
                    format!(
                        "the segment is {} bytes, shorter than the {sealed} bytes it was sealed at",
                        reader.len()
                    ),
                ));
            }
            // Past its sealed length a segment holds nothing of its own.
            reader.limit_len(sealed);
        }
        self.reader = Some((segment, reader));
        Ok(true)
    }

    /// Whether the segment being read was sealed (so it cannot be torn).
    fn is_sealed(&self, segment: u64) -> bool {
        self.sealed.contains_key(&segment)
    }

    fn step(&mut self) -> Result<Option<ReplayedBatch>> {
        loop {
            if self.reader.is_none() && !self.open_next_segment()? {
                return Ok(None);
            }
            let Some((segment, reader)) = self.reader.as_mut() else {
                return Ok(None);
            };
            let segment = *segment;
            let step = reader
                .next_step()
                .map_err(|e| Error::io(format!("reading segment {segment}"), e))?;
            match step {
                Step::Fragment {
                    kind,
                    offset,
                    payload,
                } => {
                    let fragment_end = offset + (FRAGMENT_HEADER_BYTES + payload.len()) as u64;
                    if matches!(kind, FragmentType::Full | FragmentType::Last) {
                        self.record_end = fragment_end;
                    }
                    let bytes = &reader.block()[payload];
                    match (kind, self.partial.take()) {
                        (FragmentType::Full, None) => {
                            let bytes = bytes.to_vec();
                            if let Some(batch) = self.finish_record(segment, offset, &bytes)? {
                                return Ok(Some(batch));
                            }
                        }
                        (FragmentType::First, None) => {
                            self.partial = Some((offset, bytes.to_vec()))
                        }
                        (FragmentType::Middle | FragmentType::Last, Some((start, mut record))) => {
                            if record.len() + bytes.len() > BATCH_BYTES_MAX {
                                self.on_damage(
                                    segment,
                                    start,
                                    offset + 1,
                                    "record exceeds the maximum batch size",
                                )?;
                                continue;
                            }
                            record.extend_from_slice(bytes);
                            if kind == FragmentType::Middle {
                                self.partial = Some((start, record));
                            } else if let Some(batch) =
                                self.finish_record(segment, start, &record)?
                            {
                                return Ok(Some(batch));
                            }
                        }
                        (FragmentType::Full | FragmentType::First, Some((start, _))) => {
                            // The record in progress never got its last fragment.
                            if self.mode == RecoveryMode::SkipCorrupted {
                                self.skip(
                                    segment,
                                    start,
                                    offset - start,
                                    "record without its last fragment",
                                );
                                if let Some((_, reader)) = self.reader.as_mut() {
                                    reader.set_position(offset);
                                }
                            } else {
                                return Err(corruption(
                                    segment,
                                    start,
                                    "record without its last fragment",
                                ));
                            }
                        }
                        (FragmentType::Middle | FragmentType::Last, None) => {
                            self.on_damage(
                                segment,
                                offset,
                                offset + 1,
                                "fragment without the start of its record",
                            )?;
                        }
                    }
                }
                Step::End => {
                    if let Some((start, _)) = self.partial.take() {
                        let end = reader.len();
                        self.on_incomplete_tail(segment, start, end)?;
                    }
                    if !self.done {
                        self.end_segment(segment)?;
                    }
                    self.reader = None;
                    if self.done {
                        return Ok(None);
                    }
                }
                Step::Damage {
                    offset,
                    reason,
                    fatal,
                } => {
                    if fatal {
                        return Err(corruption(segment, offset, reason));
                    }
                    let cut = self.partial.take().map_or(offset, |(start, _)| start);
                    self.on_damage(segment, cut, offset + 1, &reason)?;
                    if self.done {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn finish_record(
        &mut self,
        segment: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<Option<ReplayedBatch>> {
        match Batch::decode(bytes) {
            Ok(batch) => {
                self.report.batches += 1;
                if !batch.is_empty() {
                    let last = batch.last_seqno();
                    self.report.last_seqno =
                        Some(self.report.last_seqno.map_or(last, |s| s.max(last)));
                }
                Ok(Some(ReplayedBatch {
                    segment,
                    offset,
                    batch,
                }))
            }
            Err(reason) if self.mode == RecoveryMode::SkipCorrupted => {
                self.skip(
                    segment,
                    offset,
                    bytes.len() as u64,
                    format!("undecodable batch: {reason}"),
                );
                Ok(None)
            }
            // The checksums passed, so this is not a torn write.
            Err(reason) => Err(corruption(
                segment,
                offset,
                format!("undecodable batch: {reason}"),
            )),
        }
    }

    /// The segment ended cleanly: records its end, which for a sealed
    /// segment must be exactly its sealed length.
    fn end_segment(&mut self, segment: u64) -> Result<()> {
        let end = self.record_end;
        if let Some(&sealed) = self.sealed.get(&segment)
            && end != sealed
            && self.mode != RecoveryMode::SkipCorrupted
        {
            return Err(corruption(
                segment,
                end,
                format!(
                    "its records end at offset {end}, before the {sealed} bytes it was sealed at"
                ),
            ));
        }
        self.report.segment_ends.push((segment, end));
        Ok(())
    }

    /// Damage at `cut` (the first byte not part of an intact record); the
    /// search for valid fragments after it starts at `scan_from`.
    fn on_damage(&mut self, segment: u64, cut: u64, scan_from: u64, reason: &str) -> Result<()> {
        // A header the owner knows was synced is never torn.
        let durable_header = self.headers_durable && cut == 0;
        let is_last = self.is_last_segment() && !self.is_sealed(segment) && !durable_header;
        let Some((_, reader)) = self.reader.as_mut() else {
            return Ok(());
        };
        let io = |e| Error::io(format!("reading segment {segment}"), e);
        match self.mode {
            RecoveryMode::AbsoluteConsistency => Err(corruption(segment, cut, reason)),
            RecoveryMode::TolerateTornTail => {
                if is_last
                    && reader
                        .valid_fragment_after(scan_from)
                        .map_err(io)?
                        .is_none()
                {
                    let len = reader.len();
                    self.trim_tail(segment, cut, len, reason);
                    Ok(())
                } else {
                    Err(corruption(segment, cut, reason))
                }
            }
            RecoveryMode::SkipCorrupted => {
                let resume = reader
                    .valid_fragment_after(scan_from)
                    .map_err(io)?
                    .unwrap_or(reader.len());
                reader.set_position(resume);
                self.skip(segment, cut, resume - cut, reason);
                Ok(())
            }
        }
    }

    /// A record cut off by the end of its segment.
    fn on_incomplete_tail(&mut self, segment: u64, start: u64, end: u64) -> Result<()> {
        let reason = "record is cut off by the end of the segment";
        match self.mode {
            RecoveryMode::TolerateTornTail
                if self.is_last_segment() && !self.is_sealed(segment) =>
            {
                self.trim_tail(segment, start, end, reason);
                Ok(())
            }
            RecoveryMode::SkipCorrupted => {
                self.skip(segment, start, end - start, reason);
                Ok(())
            }
            _ => Err(corruption(segment, start, reason)),
        }
    }

    fn trim_tail(&mut self, segment: u64, cut: u64, len: u64, reason: &str) {
        tracing::warn!(
            segment,
            offset = cut,
            bytes = len - cut,
            reason,
            "trimming the torn tail of the WAL"
        );
        self.report.tail_bytes_dropped = len.saturating_sub(cut);
        self.report.torn_tail = Some((segment, cut));
        // The records end where the last intact one does (the cut may be
        // past block padding after it).
        self.report
            .segment_ends
            .push((segment, self.record_end.min(cut)));
        self.reader = None;
        self.done = true;
    }

    fn skip(&mut self, segment: u64, offset: u64, len: u64, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(segment, offset, len, reason = %reason, "skipping a damaged WAL range");
        self.report.skipped.push(SkippedRange {
            segment,
            offset,
            len,
            reason,
        });
    }
}

fn corruption(segment: u64, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corruption {
        segment,
        offset,
        reason: reason.into(),
    }
}

impl Iterator for Replay {
    type Item = Result<ReplayedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

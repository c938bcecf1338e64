//! Replaying the log: every intact batch, in order, under a recovery mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::Fs;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::format::{
    FORMAT_VERSION_KEYSPACES, FORMAT_VERSION_PREDECESSOR, FORMAT_VERSION_RANGE_DELETES,
    SEGMENT_HEADER_BYTES, parse_segment_file_name, segment_file_name,
};
use crate::reader::SegmentReader;
use crate::record::{Damage, RecordReader, RecordStep};

/// Which segments a recovery reads, and what the caller knows about them
/// (from its manifest): the sealed ones with their synced lengths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// The segments to replay, ascending. Every one must exist; numbers
    /// must follow each other without a gap (unless the mode is
    /// [`RecoveryMode::SkipCorrupted`]).
    pub segments: Vec<u64>,
    /// Segments known to be sealed: segment -> synced length. A sealed
    /// segment is read up to that length only; damage before it, or
    /// records that end before it, are [`Error::Corruption`] (it can have
    /// no torn tail), unless the mode is [`RecoveryMode::SkipCorrupted`].
    pub sealed: BTreeMap<u64, u64>,
    /// Every segment's header is known durable (the owner recorded the
    /// segment only after its header was synced): a damaged header is
    /// [`Error::Corruption`] even in the last segment, never a torn tail
    /// (unless the mode is [`RecoveryMode::SkipCorrupted`]).
    pub headers_durable: bool,
    /// The owner recorded each segment's seal before it synced any record
    /// of a later segment (a [`SegmentListener`](crate::SegmentListener)
    /// does): records after a segment the plan does not list as sealed
    /// were never acknowledged as durable. Such a segment may then have
    /// lost its tail in a crash although later segments exist (its
    /// successor's `Predecessor` fragment says how long it was): the
    /// replay ends in it, and the later segments are dropped
    /// ([`ReplayReport::segments_dropped`]) instead of being corruption.
    pub seals_tracked: bool,
}

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
    /// Segments of the plan not read because the replay ended in an
    /// earlier one that a crash cut short before its seal was recorded
    /// (see [`RecoveryPlan::seals_tracked`]). None of their records was
    /// acknowledged as durable; recovery cuts them back to their headers.
    pub segments_dropped: Vec<u64>,
    /// For each segment read that opens with a `Predecessor` fragment:
    /// (that segment, the segment before it, the final length recorded
    /// for that one).
    pub predecessors: Vec<(u64, u64, u64)>,
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
    reader: Option<(u64, RecordReader)>,
    /// Sealed segments and their lengths (see [`RecoveryPlan::sealed`]).
    sealed: BTreeMap<u64, u64>,
    /// See [`RecoveryPlan::headers_durable`].
    headers_durable: bool,
    /// See [`RecoveryPlan::seals_tracked`].
    seals_tracked: bool,
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
            sealed: plan.sealed,
            headers_durable: plan.headers_durable,
            seals_tracked: plan.seals_tracked,
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
        let mut reader = self.records_of(segment)?;
        self.report.segments.push(segment);
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

    /// Whether the plan lists `segment` as sealed (so it cannot be torn).
    pub(crate) fn is_sealed(&self, segment: u64) -> bool {
        self.sealed.contains_key(&segment)
    }

    fn step(&mut self) -> Result<Option<ReplayedBatch>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.reader.is_none() && !self.open_next_segment()? {
                return Ok(None);
            }
            let Some((segment, reader)) = self.reader.as_mut() else {
                return Ok(None);
            };
            let segment = *segment;
            let version = reader.format_version();
            let step = reader
                .next_record()
                .map_err(|e| Error::io(format!("reading segment {segment}"), e))?;
            match step {
                RecordStep::Record { offset, bytes } => {
                    if let Some(batch) = self.finish_record(segment, version, offset, &bytes)? {
                        return Ok(Some(batch));
                    }
                }
                RecordStep::Predecessor {
                    offset,
                    segment: previous,
                    len,
                } => {
                    // Checked when the segment before ended; it must open
                    // a segment of a format that has them.
                    if version < FORMAT_VERSION_PREDECESSOR || offset != SEGMENT_HEADER_BYTES as u64
                    {
                        let reason = format!(
                            "a predecessor fragment at offset {offset} of a version-{version} segment"
                        );
                        if self.mode != RecoveryMode::SkipCorrupted {
                            return Err(corruption(segment, offset, reason));
                        }
                        self.skip(segment, offset, 1, reason);
                    } else {
                        self.report.predecessors.push((segment, previous, len));
                    }
                }
                RecordStep::End => {
                    self.end_segment(segment)?;
                    self.reader = None;
                }
                RecordStep::Damage(damage) => self.on_damage(segment, damage)?,
            }
        }
    }

    /// Decodes the record at `offset` of `segment` (of format `version`)
    /// as a batch, or applies the damage policy to it.
    fn finish_record(
        &mut self,
        segment: u64,
        version: u16,
        offset: u64,
        bytes: &[u8],
    ) -> Result<Option<ReplayedBatch>> {
        // Format 1 had no keyspace field: one in a format-1 segment is damage.
        let allowed = crate::batch::Allowed {
            keyspaces: version >= FORMAT_VERSION_KEYSPACES,
            range_deletes: version >= FORMAT_VERSION_RANGE_DELETES,
        };
        match Batch::decode_format(bytes, allowed) {
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
    /// segment must be exactly its sealed length, and for an unsealed one
    /// followed by others the length its successor's `Predecessor`
    /// fragment gives (a shorter one ends the replay when the plan
    /// [tracks seals](RecoveryPlan::seals_tracked)).
    fn end_segment(&mut self, segment: u64) -> Result<()> {
        let end = self.reader.as_ref().map_or(0, |(_, r)| r.record_end());
        if self.mode == RecoveryMode::SkipCorrupted {
            self.report.segment_ends.push((segment, end));
            return Ok(());
        }
        if let Some(&sealed) = self.sealed.get(&segment) {
            if end != sealed {
                return Err(corruption(
                    segment,
                    end,
                    format!(
                        "its records end at offset {end}, before the {sealed} bytes it was sealed at"
                    ),
                ));
            }
        } else if !self.is_last_segment() {
            let tolerant = self.seals_tracked && self.mode == RecoveryMode::TolerateTornTail;
            match self.successor_start(segment)? {
                Start::Predecessor(previous, _) if previous != segment => {
                    return Err(corruption(
                        segment,
                        end,
                        format!("the next segment names segment {previous} as the one before it"),
                    ));
                }
                Start::Predecessor(_, len) if len == end => {}
                Start::Predecessor(_, len) if len < end => {
                    return Err(corruption(
                        segment,
                        len,
                        format!(
                            "its records end at offset {end}, past the {len} bytes the next \
                             segment says it ended at"
                        ),
                    ));
                }
                Start::Predecessor(_, len) => {
                    if !tolerant {
                        return Err(corruption(
                            segment,
                            end,
                            format!(
                                "its records end at offset {end}, before the {len} bytes the \
                                 next segment says it ended at"
                            ),
                        ));
                    }
                    self.report.segment_ends.push((segment, end));
                    self.drop_later_segments(
                        segment,
                        &format!(
                            "a crash cut it at {end} bytes of {len} before its seal was recorded"
                        ),
                    );
                    return Ok(());
                }
                Start::Damaged { in_header } if tolerant && !self.durable_header(in_header) => {
                    // The successor's first write was lost, so this segment
                    // may have lost its tail too: nothing after it counts.
                    self.report.segment_ends.push((segment, end));
                    self.drop_later_segments(
                        segment,
                        "the next segment's start was lost in a crash",
                    );
                    return Ok(());
                }
                Start::Damaged { .. } | Start::Empty | Start::Unclaimed => {}
            }
        }
        self.report.segment_ends.push((segment, end));
        Ok(())
    }

    /// Whether damage in a header (`in_header`) cannot be a crash's: the
    /// owner synced every header before recording the segment.
    fn durable_header(&self, in_header: bool) -> bool {
        in_header && self.headers_durable
    }

    /// A record reader over segment `segment`'s file, its header read.
    fn records_of(&self, segment: u64) -> Result<RecordReader> {
        let path = self.dir.join(segment_file_name(segment));
        let context = || format!("reading {}", path.display());
        let file = self
            .fs
            .open_read(&path)
            .map_err(|e| Error::io(context(), e))?;
        let reader = SegmentReader::open(file, segment).map_err(|e| Error::io(context(), e))?;
        Ok(RecordReader::new(reader))
    }

    /// How the segment after `segment` (the next of the plan) starts.
    fn successor_start(&self, segment: u64) -> Result<Start> {
        let Some(&next) = self.segments.get(self.next_segment) else {
            return Ok(Start::Empty);
        };
        if next != segment + 1 {
            // A gap: reported as such when the replay gets there.
            return Ok(Start::Unclaimed);
        }
        let step = self
            .records_of(next)?
            .next_record()
            .map_err(|e| Error::io(format!("reading segment {next}"), e))?;
        Ok(match step {
            RecordStep::Predecessor { segment, len, .. } => Start::Predecessor(segment, len),
            RecordStep::Record { .. } => Start::Unclaimed,
            RecordStep::End => Start::Empty,
            RecordStep::Damage(damage) => Start::Damaged {
                in_header: damage.in_header(),
            },
        })
    }

    /// Ends the replay in `segment` (read to its last intact record): every
    /// later segment of the plan is dropped, for `reason`.
    fn drop_later_segments(&mut self, segment: u64, reason: &str) {
        let dropped = self.segments[self.next_segment..].to_vec();
        tracing::warn!(
            segment,
            reason,
            ?dropped,
            "the WAL ends in a segment whose seal was never recorded; later segments dropped"
        );
        self.report.segments_dropped = dropped;
        self.reader = None;
        self.done = true;
    }

    /// The damage policy: what `damage` in `segment` means under the
    /// recovery mode — a torn tail to trim, a range to skip, or an error.
    fn on_damage(&mut self, segment: u64, damage: Damage) -> Result<()> {
        if damage.fatal {
            return Err(corruption(segment, damage.cut, damage.reason));
        }
        // Only the last segment can be torn: not one that was sealed, nor a
        // header the owner knows was synced. If the plan tracks seals, an
        // unsealed segment followed by others is as good as last when the
        // next one is empty, says this one was longer, or lost its own
        // start: nothing after it was synced.
        let durable = self.is_sealed(segment) || (self.headers_durable && damage.in_header());
        let mut drop_later = false;
        let may_be_torn = !durable
            && (self.is_last_segment()
                // (the other modes do not ask)
                || self.mode != RecoveryMode::TolerateTornTail
                || match self.successor_start(segment)? {
                    Start::Empty => self.seals_tracked,
                    Start::Predecessor(previous, len) => {
                        drop_later = self.seals_tracked && previous == segment && len > damage.cut;
                        drop_later
                    }
                    Start::Damaged { in_header } => {
                        drop_later = self.seals_tracked && !self.durable_header(in_header);
                        drop_later
                    }
                    Start::Unclaimed => false,
                });
        let Some((_, reader)) = self.reader.as_mut() else {
            return Ok(());
        };
        let io = |e| Error::io(format!("reading segment {segment}"), e);
        match self.mode {
            RecoveryMode::AbsoluteConsistency => {
                Err(corruption(segment, damage.cut, damage.reason))
            }
            RecoveryMode::TolerateTornTail => {
                if may_be_torn
                    && reader
                        .valid_fragment_after(damage.scan_from)
                        .map_err(io)?
                        .is_none()
                {
                    let len = reader.len();
                    self.trim_tail(segment, damage.cut, len, &damage.reason);
                    if !self.is_last_segment() {
                        // Empty, or (`drop_later`) never synced.
                        let why = if drop_later {
                            "a crash tore it before its seal was recorded"
                        } else {
                            "torn, and the segments after it are empty"
                        };
                        self.drop_later_segments(segment, why);
                    }
                    Ok(())
                } else {
                    Err(corruption(segment, damage.cut, damage.reason))
                }
            }
            RecoveryMode::SkipCorrupted => {
                let resume = reader
                    .valid_fragment_after(damage.scan_from)
                    .map_err(io)?
                    .unwrap_or(reader.len())
                    .max(damage.cut);
                reader.skip_to(resume);
                self.skip(segment, damage.cut, resume - damage.cut, damage.reason);
                Ok(())
            }
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
        let end = self.reader.as_ref().map_or(0, |(_, r)| r.record_end());
        self.report.segment_ends.push((segment, end.min(cut)));
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

/// How a segment starts (see [`Replay::successor_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With a `Predecessor` fragment: (segment, final length).
    Predecessor(u64, u64),
    /// With a batch (a segment of format 3 or older, or one started by a
    /// recovery), or not numbered right after: it says nothing about the
    /// segment before.
    Unclaimed,
    /// Holding no record.
    Empty,
    /// With damage (`in_header`: in its file header).
    Damaged { in_header: bool },
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

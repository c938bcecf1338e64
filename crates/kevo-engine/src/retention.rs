//! Which WAL segments are still needed, with several keyspaces writing
//! into one log (RocksDB's minimum log number across column families).
//!
//! Every memtable switch starts a new WAL segment; [`WalStarts`] keeps, for
//! each segment a switch (or open) started, the last seqno assigned before
//! it. A keyspace's unflushed writes start in the `first_log` of its oldest
//! memtable ([`ReadState::first_unflushed_log`]). A flush edit records:
//! - the keyspace's own log number: the first segment that may still hold
//!   one of its writes not in a table (replay skips its entries below it);
//! - the global log number: the smallest of every keyspace's, and of the
//!   newest switch's segment (writes arriving now land there or later):
//!   segments below it are deleted;
//! - `last_seqno`: the last seqno before that segment, so that the WAL from
//!   the global log number on continues the manifest's seqnos exactly (what
//!   open checks).
//!
//! A memtable that was empty when the segments below the global log number
//! were forgotten may name one of them as its first; its writes came later,
//! so a log point reads such a segment as the oldest one still known.
//!
//! A keyspace written rarely keeps its memtable, and so the WAL, from the
//! segment of its first write; the commit path flushes the keyspaces that
//! hold the oldest segment once the WAL grows past
//! `Options::max_total_wal_bytes`.
//!
//! [`ReadState::first_unflushed_log`]: crate::read::ReadState::first_unflushed_log

use std::collections::BTreeMap;
use std::sync::Mutex;

use kevo_core::SeqNo;

use crate::sync::lock;

/// Where a segment started: the last seqno before it, and the WAL's
/// bytes written (since open) when it started.
#[derive(Debug, Clone, Copy)]
struct Start {
    last_seqno: SeqNo,
    wal_bytes: u64,
}

/// The segments memtable switches (and open) started, each with the last
/// seqno assigned before it.
#[derive(Debug, Default)]
pub(crate) struct WalStarts {
    starts: Mutex<BTreeMap<u64, Start>>,
}

impl WalStarts {
    /// Starts with `starts`: (segment, last seqno before it) pairs, at
    /// open (no WAL bytes written yet).
    pub(crate) fn new(starts: impl IntoIterator<Item = (u64, SeqNo)>) -> Self {
        let starts = starts
            .into_iter()
            .map(|(segment, last_seqno)| {
                let start = Start {
                    last_seqno,
                    wal_bytes: 0,
                };
                (segment, start)
            })
            .collect();
        WalStarts {
            starts: Mutex::new(starts),
        }
    }

    /// A switch started `segment` after seqno `last_seqno`, when the WAL
    /// had written `wal_bytes` (writer mutex held).
    pub(crate) fn record(&self, segment: u64, last_seqno: SeqNo, wal_bytes: u64) {
        let start = Start {
            last_seqno,
            wal_bytes,
        };
        lock(&self.starts).insert(segment, start);
    }

    /// The WAL bytes written (since open) before `segment` started, if a
    /// switch started it.
    pub(crate) fn wal_bytes_before(&self, segment: u64) -> Option<u64> {
        lock(&self.starts).get(&segment).map(|s| s.wal_bytes)
    }

    /// The segment the newest switch started (0 if none is known: a
    /// read-only engine, which has no WAL).
    pub(crate) fn newest(&self) -> u64 {
        lock(&self.starts).keys().next_back().copied().unwrap_or(0)
    }

    /// The last seqno before `segment`, if a switch started it.
    pub(crate) fn last_seqno_before(&self, segment: u64) -> Option<SeqNo> {
        lock(&self.starts).get(&segment).map(|s| s.last_seqno)
    }

    /// Forgets the segments below `segment` (they are deleted).
    pub(crate) fn forget_before(&self, segment: u64) {
        let mut starts = lock(&self.starts);
        *starts = starts.split_off(&segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_recorded_and_forgotten_in_order() {
        let starts = WalStarts::new([(3, 10)]);
        starts.record(5, 20, 100);
        starts.record(8, 35, 250);
        assert_eq!(starts.wal_bytes_before(3), Some(0));
        assert_eq!(starts.wal_bytes_before(8), Some(250));
        assert_eq!(starts.newest(), 8);
        assert_eq!(starts.last_seqno_before(5), Some(20));
        assert_eq!(starts.last_seqno_before(4), None);
        starts.forget_before(5);
        assert_eq!(starts.last_seqno_before(3), None);
        assert_eq!(starts.last_seqno_before(5), Some(20));
        assert_eq!(WalStarts::default().newest(), 0);
    }
}

/// Holders that keep WAL segments from being retired while they copy them
/// (checkpoints and backups being made), and the highest log number a
/// flush asked to retire below meanwhile: retired when the last holder
/// lets go.
#[derive(Debug, Default)]
pub(crate) struct WalHold {
    state: Mutex<HoldState>,
}

#[derive(Debug, Default)]
struct HoldState {
    holders: usize,
    deferred: Option<u64>,
}

impl WalHold {
    /// Starts one hold.
    pub(crate) fn hold(&self) {
        lock(&self.state).holders += 1;
    }

    /// Whether WAL segments below `log_number` may be retired now; if a
    /// hold is on, the request is kept for [`WalHold::release`].
    pub(crate) fn may_retire(&self, log_number: u64) -> bool {
        let mut state = lock(&self.state);
        if state.holders == 0 {
            return true;
        }
        state.deferred = Some(state.deferred.map_or(log_number, |d| d.max(log_number)));
        false
    }

    /// Ends one hold: the log number to retire below now, if this was the
    /// last hold and a retirement waited for it.
    pub(crate) fn release(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        state.holders = state.holders.saturating_sub(1);
        if state.holders > 0 {
            return None;
        }
        state.deferred.take()
    }
}

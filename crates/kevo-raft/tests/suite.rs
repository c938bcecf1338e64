//! openraft's own storage test suite (`openraft::testing::Suite`), a test
//! suite this project did not write, run against kevo-raft: every test
//! builds a fresh node directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kevo_raft::{LogStore, StateMachine, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct KevoBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for KevoBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = kevo_raft::open(dir.path()).expect("open a node directory");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_in_full() {
    if let Err(e) = Suite::test_all(KevoBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}

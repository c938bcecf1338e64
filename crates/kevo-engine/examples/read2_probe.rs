use kevo_engine::{Db, Options};
use std::sync::Arc;
fn main() {
    let dir = std::path::PathBuf::from("/tmp/space_probe_db");
    let cache: usize = std::env::args().nth(1).map_or(64, |s| s.parse().unwrap());
    let threads: usize = std::env::args().nth(2).map_or(2, |s| s.parse().unwrap());
    let db =
        Arc::new(Db::open_with(&dir, Options::default().block_cache_bytes(cache << 20)).unwrap());
    let n: u64 = 1_000_000;
    let keys: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| {
                format!(
                    "{:016}",
                    2 * ((i.wrapping_mul(0x9E3779B97F4A7C15) >> 20) % (4 * n))
                )
            })
            .collect(),
    );
    for round in 0..4 {
        let t = std::time::Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|th| {
                let db = db.clone();
                let keys = keys.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 99 + th as u64 * 7919 + round;
                    let mut found = 0;
                    for _ in 0..500_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = &keys[(x % n) as usize];
                        if db.get(k).unwrap().is_some() {
                            found += 1;
                        }
                    }
                    found
                })
            })
            .collect();
        let found: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        println!(
            "round {round}: {threads} threads {:.0} gets/s, found {found}",
            (threads * 500_000) as f64 / t.elapsed().as_secs_f64()
        );
    }
}

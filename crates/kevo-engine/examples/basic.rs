//! Open a database, write, read, iterate, reopen.
//!
//! Run with `cargo run -p kevo-engine --example basic`.

use kevo_engine::{Db, Result};

fn main() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| kevo_engine::Error::Io {
        context: "creating a temporary directory".to_string(),
        source: e,
    })?;

    let db = Db::open(dir.path())?;
    db.put("fruit/apple", "red")?;
    db.put("fruit/banana", "yellow")?;
    db.put("veg/carrot", "orange")?;
    db.delete("fruit/banana")?;

    assert_eq!(db.get("fruit/apple")?.as_deref(), Some(&b"red"[..]));
    assert_eq!(db.get("fruit/banana")?, None);

    // Every key starting with "fruit/", then everything in reverse.
    for item in db.prefix("fruit/") {
        let (key, value) = item?;
        println!(
            "{} = {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }
    let reversed: Vec<_> = db
        .range::<&str, _>(..)
        .rev()
        .map(|item| item.map(|(key, _)| key))
        .collect::<Result<_>>()?;
    assert_eq!(reversed, ["veg/carrot", "fruit/apple"]);

    // Closing syncs the WAL; reopening replays it.
    db.close()?;
    let db = Db::open(dir.path())?;
    assert_eq!(db.get("veg/carrot")?.as_deref(), Some(&b"orange"[..]));
    println!("{}", db.stats());
    db.close()
}

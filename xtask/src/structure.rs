//! `cargo xtask ci`'s structure checks: the code's shape matches its map.
//!
//! - **The crate graph**: every workspace crate's dependencies on other
//!   workspace crates, as `cargo metadata` reports them (normal
//!   dependencies only), equal the table between `<!-- crate-graph -->` and
//!   `<!-- /crate-graph -->` in `docs/architecture.md` (rows
//!   `` | `kevo-x` | `kevo-a`, `kevo-b` | ... ``).
//! - **No module circles**: in `kevo-engine`, `kevo-compaction` and
//!   `kevo-sstable`, no module refers (through `crate::...`, its re-exports
//!   in `lib.rs` resolved to the module they come from) to one that refers
//!   back to it, directly or around a longer circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The crates whose modules must import each other in no circle.
const ACYCLIC_CRATES: [&str; 3] = ["kevo-engine", "kevo-compaction", "kevo-sstable"];

/// Runs both checks.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    check_crate_graph(root)?;
    for krate in ACYCLIC_CRATES {
        check_module_circles(&root.join("crates").join(krate).join("src"), krate)?;
    }
    println!("structure: the crate graph matches docs/architecture.md; no module circles");
    Ok(())
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn check_crate_graph(root: &Path) -> Result<(), String> {
    let output = Command::new(crate::cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    let mut actual = Graph::new();
    for package in packages {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        if !name.starts_with("kevo-") || name == "kevo-bench" {
            continue;
        }
        let deps = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("kevo-"))
            .map(str::to_string)
            .collect();
        actual.insert(name.to_string(), deps);
    }
    let doc_path = root.join("docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("reading {}: {e}", doc_path.display()))?;
    let documented = parse_crate_table(&doc)?;
    if actual != documented {
        let mut report =
            String::from("docs/architecture.md's crate table does not match `cargo metadata`:\n");
        for name in actual
            .keys()
            .chain(documented.keys())
            .collect::<BTreeSet<_>>()
        {
            let (a, d) = (actual.get(name), documented.get(name));
            if a != d {
                report.push_str(&format!(
                    "  {name}: cargo says {:?}, the table says {:?}\n",
                    a.map(|s| s.iter().collect::<Vec<_>>()),
                    d.map(|s| s.iter().collect::<Vec<_>>())
                ));
            }
        }
        return Err(report);
    }
    Ok(())
}

/// The rows of the table between the crate-graph markers: the crate in the
/// first cell, its dependencies (backticked) in the second.
fn parse_crate_table(doc: &str) -> Result<Graph, String> {
    let start = doc
        .find("<!-- crate-graph -->")
        .ok_or("docs/architecture.md has no <!-- crate-graph --> marker")?;
    let end = doc[start..]
        .find("<!-- /crate-graph -->")
        .ok_or("docs/architecture.md has no <!-- /crate-graph --> marker")?;
    let mut graph = Graph::new();
    for line in doc[start..start + end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| a | b | c |" splits into ["", a, b, c, ""].
        if cells.len() < 4 {
            continue;
        }
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| n.starts_with("kevo-"))
                .map(str::to_string)
                .collect()
        };
        let Some(name) = names(cells[1]).into_iter().next() else {
            continue;
        };
        graph.insert(name, names(cells[2]).into_iter().collect());
    }
    if graph.is_empty() {
        return Err("docs/architecture.md's crate table has no rows".to_string());
    }
    Ok(graph)
}

fn check_module_circles(src: &Path, krate: &str) -> Result<(), String> {
    let mut sources = BTreeMap::new();
    let entries = std::fs::read_dir(src).map_err(|e| format!("listing {}: {e}", src.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            sources.insert(stem.to_string(), strip_comments(&text));
        }
    }
    let lib = sources.remove("lib").unwrap_or_default();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let reexports = reexports(&lib, &modules);
    let mut graph = Graph::new();
    for (module, text) in &sources {
        let mut deps = BTreeSet::new();
        for name in crate_paths(text) {
            let target = if modules.contains(&name) {
                Some(name)
            } else {
                reexports.get(&name).cloned()
            };
            if let Some(target) = target.filter(|t| t != module) {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    if let Some(circle) = find_circle(&graph) {
        return Err(format!(
            "{krate}: modules import each other in a circle: {}",
            circle.join(" -> ")
        ));
    }
    Ok(())
}

/// `text` without `//` comments (doc comments included), so that intra-doc
/// links do not count as imports.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path: `crate::a::b` gives `a`,
/// `crate::{a::b, c}` gives `a` and `c`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !item.is_empty() {
                            names.push(std::mem::take(&mut item));
                        }
                        at_start = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && at_start {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        names.push(std::mem::take(&mut item));
                        at_start = false;
                    }
                }
            }
            if !item.is_empty() {
                names.push(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// Items `lib.rs` re-exports from a module (`pub use module::{A, B};`),
/// mapped to that module.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in lib.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            let name = name.split(" as ").last().unwrap_or(name).trim();
            if !name.is_empty() {
                map.insert(name.to_string(), module.to_string());
            }
        }
    }
    map
}

/// A circle in `graph`, as the path around it, if there is one.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut circle = path[start..].to_vec();
                circle.push(node.to_string());
                return Some(circle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, marks, path) {
                return Some(circle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(circle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_paths_read_single_and_grouped_imports_but_not_comments() {
        let text = strip_comments(
            "use crate::a::B;\nuse crate::{c::D, e, f::{G, H}};\n/// [x](crate::doc)\nlet x = crate::g::h();\nsuper_crate::x;",
        );
        assert_eq!(crate_paths(&text), ["a", "c", "e", "f", "g"]);
    }

    #[test]
    fn a_circle_is_found_and_a_dag_passes() {
        let mut graph = Graph::new();
        graph.insert("a".into(), ["b".into()].into());
        graph.insert("b".into(), ["c".into()].into());
        graph.insert("c".into(), BTreeSet::new());
        assert_eq!(find_circle(&graph), None);
        graph.insert("c".into(), ["a".into()].into());
        assert_eq!(
            find_circle(&graph),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }

    #[test]
    fn reexports_map_items_to_their_module() {
        let modules: BTreeSet<String> = ["db".into(), "error".into()].into();
        let map = reexports(
            "pub use db::Db;\npub use error::{Error, Result};\npub use kevo_core::X;",
            &modules,
        );
        assert_eq!(map.get("Db").map(String::as_str), Some("db"));
        assert_eq!(map.get("Result").map(String::as_str), Some("error"));
        assert!(!map.contains_key("X"));
    }

    #[test]
    fn the_crate_table_is_read_from_between_its_markers() {
        let doc = "x\n<!-- crate-graph -->\n| crate | depends on | holds |\n|---|---|---|\n| `kevo-a` | `kevo-b`, `kevo-c` | x |\n| `kevo-b` | none | y |\n<!-- /crate-graph -->\n| `kevo-z` | `kevo-a` | |";
        let graph = parse_crate_table(doc).unwrap();
        assert_eq!(graph.len(), 2);
        assert_eq!(graph["kevo-a"].len(), 2);
        assert!(graph["kevo-b"].is_empty());
    }
}

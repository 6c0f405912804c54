//! The import map of docs/architecture.md, held against the code: every
//! import between rooms (top-level modules of `src/`) runs down to a lower
//! floor, or is a known back edge that the map lists — and a listed back
//! edge that is gone must leave the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The fenced block ```` ```NAME ```` of docs/architecture.md, line by line.
fn block(doc: &str, name: &str) -> Vec<String> {
    let start = doc
        .find(&format!("```{name}\n"))
        .unwrap_or_else(|| panic!("docs/architecture.md has no ```{name} block"));
    let body = &doc[start + name.len() + 4..];
    let end = body.find("```").expect("the block ends");
    body[..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The room a source file belongs to: `src/x.rs` and `src/x/…` are `x`.
fn room_of(path: &Path) -> String {
    let rel = path.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The first path segment of each item after `prefix::`, including each
/// item of a `prefix::{a::b, c}` group.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // part of a longer name
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.push(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// Imports between rooms: (from, to) with the file that makes each.
fn imports() -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    sources(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    let mut edges = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules are not part of the house (they end a file here:
        // what follows the first `#[cfg(test)]` is not read).
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let from = room_of(&file);
        let rel = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
        // `super::` names the crate root from a room's own top file.
        let top = rel.components().count() == 1 || rel.ends_with("mod.rs") && rel.components().count() == 2;
        let mut targets = first_segments(&code, "crate::");
        targets.extend(first_segments(&code, "otapub::"));
        if top {
            targets.extend(first_segments(&code, "super::"));
        }
        for t in targets {
            let to = match t.as_str() {
                "Error" | "Result" | "ExitClass" => "error".to_string(),
                "off_runtime" => "lib".to_string(),
                _ => t,
            };
            if to != from && !to.is_empty() {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    edges
}

#[test]
fn imports_run_down_the_floors_of_docs_architecture() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let mut floor = BTreeMap::new();
    for line in block(&doc, "floors") {
        let mut words = line.split_whitespace();
        let n: u32 = words.next().unwrap().parse().expect("a floor number");
        for room in words {
            assert!(floor.insert(room.to_string(), n).is_none(), "{room} is on two floors");
        }
    }
    let known: BTreeSet<(String, String)> = block(&doc, "back-edges")
        .iter()
        .map(|l| {
            let (a, b) = l.split_once("->").expect("a -> b");
            (a.trim().to_string(), b.trim().to_string())
        })
        .collect();

    let edges = imports();
    let mut wrong = Vec::new();
    for ((from, to), file) in &edges {
        let (Some(f), Some(t)) = (floor.get(from), floor.get(to)) else {
            wrong.push(format!(
                "{file}: {from} -> {to}: give every room a floor in docs/architecture.md"
            ));
            continue;
        };
        if t >= f && !known.contains(&(from.clone(), to.clone())) {
            wrong.push(format!(
                "{file}: {from} (floor {f}) imports {to} (floor {t}): imports run down the floors"
            ));
        }
    }
    for (from, to) in &known {
        if !edges.contains_key(&(from.clone(), to.clone())) {
            wrong.push(format!(
                "the back edge {from} -> {to} is gone: take it off docs/architecture.md's list"
            ));
        }
    }
    // Every room of src/ stands on a floor.
    let rooms: BTreeSet<String> = std::fs::read_dir(Path::new(ROOT).join("src"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    for room in rooms.iter().filter(|r| !floor.contains_key(*r)) {
        wrong.push(format!("src/{room} has no floor in docs/architecture.md"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_groups_and_ignores_longer_names() {
    assert_eq!(
        first_segments(
            "use crate::{index::{self, A}, tree};\nlet x = mycrate::foo; crate::store::open()",
            "crate::"
        ),
        ["index", "tree", "store"]
    );
}

/// A source file's code before its first `#[cfg(test)]`, and what follows.
fn code_and_tests(file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let (code, tests) = text.split_once("#[cfg(test)]").unwrap_or((&text, ""));
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    (strip(code), strip(tests))
}

/// The places that make a `store::Write`, the token every write to a store
/// asks for: `Write::mint()` called (not defined) in `code`.
fn mints(code: &str) -> usize {
    code.matches("mint(").count() - code.matches("fn mint(").count()
}

/// The names of the methods of `trait Store` (src/store/mod.rs) with each
/// one's parameter list.
fn store_methods() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("src/store/mod.rs")).unwrap();
    let start = text
        .find("pub trait Store")
        .expect("src/store/mod.rs defines trait Store");
    let body = &text[start..];
    let body = &body[..body.find("\n}\n").expect("the trait ends")];
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("fn ") {
        rest = &rest[at + 3..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let params = &rest[rest.find('(').expect("a parameter list") + 1..rest.find(')').expect("it ends")];
        out.push((name, params.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    out
}

/// The methods of `Store` that change nothing: everything else writes and
/// must ask for the token. (`clean_up` removes only dead writers' temporary
/// files, as every listing of a local store does; `unreadable_public` with
/// `fix` sets file modes, no object's bytes.)
const STORE_READS: [&str; 8] = [
    "url",
    "is_local",
    "get",
    "head",
    "etag",
    "list",
    "clean_up",
    "unreadable_public",
];

#[test]
fn only_the_commit_path_can_write_to_a_store() {
    let mut files = Vec::new();
    sources(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(ROOT).unwrap().display().to_string();
        let (code, tests) = code_and_tests(file);
        // commit.rs mints the one token; the store's own unit tests write
        // to the stores they test.
        if mints(&code) > 0 && rel != "src/commit.rs" {
            wrong.push(format!(
                "{rel} makes a store::Write: only src/commit.rs writes to the store; go through crate::commit"
            ));
        }
        if mints(&tests) > 0 && !rel.starts_with("src/store/") && rel != "src/commit.rs" {
            wrong.push(format!(
                "{rel}'s tests make a store::Write: only the store's own tests write to a store directly"
            ));
        }
        // A backend's public functions are its constructors: a `pub` write
        // of its own would be a way around the token.
        if rel.starts_with("src/store/") && rel != "src/store/mod.rs" {
            for line in code.lines().map(str::trim_start) {
                let Some(sig) = line
                    .strip_prefix("pub fn ")
                    .or_else(|| line.strip_prefix("pub async fn "))
                else {
                    continue;
                };
                if !(sig.starts_with("new(") || sig.starts_with("connect(")) {
                    wrong.push(format!(
                        "{rel}: `{line}` is public: a backend's public functions are its constructors"
                    ));
                }
            }
        }
    }
    let methods = store_methods();
    for read in STORE_READS {
        if !methods.iter().any(|(name, _)| name == read) {
            wrong.push(format!("Store has no method {read}: take it off STORE_READS"));
        }
    }
    for (name, params) in &methods {
        if !STORE_READS.contains(&name.as_str()) && !params.contains("&Write") {
            wrong.push(format!(
                "Store::{name}({params}) takes no &Write: a method that changes the store asks for the token \
                 (or, if it changes nothing, goes on STORE_READS)"
            ));
        }
    }
    assert!(
        methods.iter().filter(|(_, p)| p.contains("&Write")).count() >= 5,
        "put, put_if, delete, put_file_sha256 and probe_conditional_writes take the token: {methods:?}"
    );
    assert!(
        mints(&code_and_tests(&Path::new(ROOT).join("src/commit.rs")).0) > 0,
        "commit mints the token"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_write_reader_counts_mints_not_the_definition() {
    assert_eq!(mints("pub(crate) const fn mint() -> Write {"), 0);
    assert_eq!(
        mints("const W: &Write = &Write::mint();\nlet w = store::Write::mint();"),
        2
    );
}

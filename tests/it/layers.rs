//! The layering of `src/` (ARCHITECTURE.md, "Layers"), read from the source itself: every
//! `use crate::...`, `use super::...` and inline `crate::` / `super::` path is an edge from the
//! module that writes it to the module it names. The tests fail when two modules import each
//! other however indirectly, at the top level or among the files of one folder, and when
//! `config` uses a part of certfleet other than `domain` and `util`.
//!
//! Unit tests (the `#[cfg(test)]` module last in a file) may use anything and are not read.
//! The binary's modules (`main.rs`, `commands/`) are read as a tree of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module path below the crate root: `["acme", "order"]`; `[]` is the root.
type ModPath = Vec<String>;

/// The modules of one crate tree, by path, with the source each one holds.
struct Tree {
    modules: BTreeMap<ModPath, String>,
}

impl Tree {
    /// Reads every `.rs` file below `dir`, skipping the relative paths in `skip`.
    fn read(dir: &Path, skip: &[&str]) -> Tree {
        let mut modules = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(next) = pending.pop() {
            for entry in fs::read_dir(&next).unwrap_or_else(|e| panic!("{}: {e}", next.display())) {
                let path = entry.expect("directory entry").path();
                let relative = path.strip_prefix(dir).expect("below the root");
                if skip.iter().any(|s| relative.starts_with(s)) {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = fs::read_to_string(&path).expect("read a source file");
                    modules.insert(module_path(relative), code_of(&text));
                }
            }
        }
        Tree { modules }
    }

    /// Every edge between distinct modules.
    fn edges(&self) -> BTreeSet<(ModPath, ModPath)> {
        let mut edges = BTreeSet::new();
        for (from, text) in &self.modules {
            for path in paths_in(text) {
                if let Some(to) = self.resolve(from, &path)
                    && &to != from
                {
                    edges.insert((from.clone(), to));
                }
            }
        }
        edges
    }

    /// The deepest module `path` (written in `from`) reaches: `crate::a::B` is `a`.
    fn resolve(&self, from: &ModPath, path: &[String]) -> Option<ModPath> {
        let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (from.clone(), &path[1..]),
            "super" => {
                let mut base = from.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => return None,
        };
        for segment in rest {
            let mut deeper = base.clone();
            deeper.push(segment.clone());
            if !self.modules.contains_key(&deeper) {
                break;
            }
            base = deeper;
        }
        Some(base)
    }
}

/// `acme/order.rs` -> `acme::order`, `acme/mod.rs` and `acme.rs` -> `acme`, `lib.rs` -> root.
fn module_path(relative: &Path) -> ModPath {
    let mut parts: ModPath = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without its unit tests and line comments.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.trim_start().starts_with("//") {
            true => "",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path starting with `crate`, `self` or `super`, with `use` trees expanded.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // `use` statements (a line that starts one): expand `a::{b, c::{d}}` into every leaf.
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let statement = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find(|start| trimmed.starts_with(**start));
        if let Some(start) = statement {
            let from = offset + (line.len() - trimmed.len()) + start.len();
            let end = text[from..].find(';').map_or(text.len(), |i| from + i);
            let tree: String = text[from..end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            expand(&tree, &mut Vec::new(), &mut paths);
        }
        offset += line.len();
    }
    // Inline paths elsewhere: `crate::util::clock::now()`.
    let mut rest = text;
    while let Some(at) = ["crate::", "super::"]
        .iter()
        .filter_map(|start| rest.find(start))
        .min()
    {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path: Vec<String> = word
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // `super::{...}` is the head of a `use` tree, already expanded above.
        if path.len() > 1 {
            paths.push(path);
        }
        rest = &rest[at + word.len().max(1)..];
    }
    paths
}

/// Expands one `use` tree (without spaces) under `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for item in split_top(tree) {
        match item.find('{') {
            Some(open) => {
                let head: Vec<String> = item[..open]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                let depth = prefix.len();
                prefix.extend(head);
                expand(&item[open + 1..item.len() - 1], prefix, out);
                prefix.truncate(depth);
            }
            None => {
                let mut path = prefix.clone();
                let name = item.split(" as ").next().unwrap_or(item);
                path.extend(name.split("::").map(str::to_owned));
                out.push(path);
            }
        }
    }
}

/// Splits on the commas outside braces.
fn split_top(tree: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    items.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The groups of nodes that reach each other (strongly connected components of two or more).
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut pending = vec![from.clone()];
        while let Some(node) = pending.pop() {
            for (a, b) in edges {
                if *a == node && seen.insert(b.clone()) {
                    pending.push(b.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for node in &nodes {
        let group: BTreeSet<String> = nodes
            .iter()
            .filter(|other| reachable[node].contains(**other) && reachable[**other].contains(*node))
            .map(|n| (*n).clone())
            .collect();
        if group.len() > 1 && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// The cycles of `tree` at the top level and inside each folder, as messages.
fn every_cycle(tree: &Tree) -> Vec<String> {
    let edges = tree.edges();
    let mut found = Vec::new();
    let top: BTreeSet<(String, String)> = edges
        .iter()
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && a[0] != b[0])
        .map(|(a, b)| (a[0].clone(), b[0].clone()))
        .collect();
    for group in cycles(&top) {
        found.push(format!("top level: {group:?}"));
    }
    let folders: BTreeSet<&String> = tree
        .modules
        .keys()
        .filter(|m| m.len() > 1)
        .map(|m| &m[0])
        .collect();
    for folder in folders {
        // Inside a folder, a file is its first level below it; the folder's own mod.rs is `mod`.
        let node = |m: &ModPath| match m.len() {
            1 => Some("mod".to_owned()),
            _ => Some(m[1].clone()),
        };
        let inner: BTreeSet<(String, String)> = edges
            .iter()
            .filter(|(a, b)| a.first() == Some(folder) && b.first() == Some(folder))
            .filter_map(|(a, b)| Some((node(a)?, node(b)?)))
            .filter(|(a, b)| a != b)
            .collect();
        for group in cycles(&inner) {
            found.push(format!("inside {folder}/: {group:?}"));
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_library_has_no_import_cycles() {
    let tree = Tree::read(&src(), &["main.rs", "commands"]);
    assert!(
        tree.modules.len() > 50,
        "read {} modules",
        tree.modules.len()
    );
    assert!(
        tree.edges().len() > 100,
        "the reader found too few imports to be reading them"
    );
    let found = every_cycle(&tree);
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_commands_have_no_import_cycles() {
    let tree = Tree::read(&src().join("commands"), &[]);
    let found = every_cycle(&tree);
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_akash_crate_has_no_import_cycles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/akash/src");
    let tree = Tree::read(&dir, &[]);
    let found = every_cycle(&tree);
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn config_is_the_bottom_layer() {
    let tree = Tree::read(&src(), &["main.rs", "commands"]);
    let allowed = ["config", "domain", "util"];
    let reached: BTreeSet<String> = tree
        .edges()
        .into_iter()
        .filter(|(from, _)| from.first().is_some_and(|m| m == "config"))
        .filter_map(|(_, to)| to.first().cloned())
        .filter(|to| !allowed.contains(&to.as_str()))
        .collect();
    assert!(
        reached.is_empty(),
        "config uses {reached:?}; it may use only domain and util (and external crates)"
    );
}

#[test]
fn the_reader_sees_cycles_and_layers() {
    // The checks above pass vacuously if the reader misses imports: here it must find a planted
    // cycle and a planted upward import.
    let mut modules = BTreeMap::new();
    let module = |path: &[&str]| path.iter().map(|s| (*s).to_owned()).collect::<ModPath>();
    modules.insert(module(&[]), String::new());
    modules.insert(module(&["a"]), "use crate::b::{self, Thing};".to_owned());
    modules.insert(module(&["b"]), "fn f() { crate::a::g(); }".to_owned());
    modules.insert(module(&["c"]), "mod x;\npub use self::x::X;".to_owned());
    modules.insert(module(&["c", "x"]), "use super::{y::Y, Z};".to_owned());
    modules.insert(module(&["c", "y"]), "use super::super::a;".to_owned());
    let tree = Tree { modules };
    let found = every_cycle(&tree);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("\"a\", \"b\""), "{found:?}");
    assert!(found[1].contains("inside c/"), "{found:?}");
}

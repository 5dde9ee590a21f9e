//! The library's top-level modules import each other one way: data flows down the pipeline and
//! primitives sit at the bottom. This reads `src/` and fails when the modules' `crate::` imports
//! form a circle, naming the modules in it and one import of each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module -> the files it is made of (`src/m.rs` or `src/m/**.rs`). The binaries
/// (`main.rs`, `src/bin/`) are not modules of the library.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && name != "bin" {
            let files: Vec<PathBuf> = walkdir::WalkDir::new(&p)
                .into_iter()
                .flatten()
                .filter(|f| f.path().extension().is_some_and(|x| x == "rs"))
                .map(|f| f.into_path())
                .collect();
            out.insert(name, files);
        } else if p.extension().is_some_and(|x| x == "rs") && !["lib", "main"].contains(&&*name) {
            out.insert(name, vec![p]);
        }
    }
    out
}

/// Every `crate::<module>` a file names, outside comments, with the line that names it.
fn imports(file: &Path, known: &BTreeSet<String>) -> Vec<(String, String)> {
    let text = fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let m: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&m) {
                out.push((m, line.trim().to_owned()));
            }
        }
        // `use crate::{a, b::c}` names several.
        if let Some(i) = code.find("use crate::{") {
            let inner = &code[i + "use crate::{".len()..];
            for part in inner.split([',', '}']) {
                let m = part.trim().split("::").next().unwrap_or("").to_owned();
                if known.contains(&m) {
                    out.push((m, line.trim().to_owned()));
                }
            }
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut c = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    c.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if c.len() > 1 {
                    c.sort();
                    self.out.push(c);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

fn graph_of(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mods = modules(src);
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (m, files) in &mods {
        let mut edges: BTreeMap<String, String> = BTreeMap::new();
        for f in files {
            for (to, line) in imports(f, &known) {
                if &to != m {
                    edges.entry(to).or_insert_with(|| {
                        format!("{}: {line}", f.strip_prefix(src).unwrap().display())
                    });
                }
            }
        }
        graph.insert(m.clone(), edges);
    }
    graph
}

#[test]
fn the_library_modules_form_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    assert!(
        graph.len() >= 10 && graph.contains_key("base"),
        "{:?}",
        graph.keys()
    );
    let found = circles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|(b, _)| c.contains(b))
                        .map(move |(b, why)| format!("  {a} -> {b} ({why})"))
                })
                .collect();
            format!("circle {}:\n{}", c.join(", "), edges.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", described.join("\n"));
    // The primitives import no other module of the crate.
    assert!(graph["base"].is_empty(), "base imports {:?}", graph["base"]);
}

/// The detector itself finds a circle and a longer one, and not a chain.
#[test]
fn the_circle_detector_finds_circles_and_passes_chains() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path();
    fs::write(src.join("a.rs"), "use crate::b::X;\n").unwrap();
    fs::write(
        src.join("b.rs"),
        "// crate::a in a comment\nfn f() { crate::c::g() }\n",
    )
    .unwrap();
    fs::write(src.join("c.rs"), "use crate::{d, e::F};\n").unwrap();
    fs::create_dir(src.join("d")).unwrap();
    fs::write(src.join("d/mod.rs"), "mod inner;\n").unwrap();
    fs::write(src.join("d/inner.rs"), "use crate::b;\n").unwrap();
    fs::write(src.join("e.rs"), "").unwrap();
    let g = graph_of(src);
    assert_eq!(circles(&g), vec![vec!["b", "c", "d"]]);
    fs::write(src.join("d/inner.rs"), "").unwrap();
    assert!(circles(&graph_of(src)).is_empty());
}

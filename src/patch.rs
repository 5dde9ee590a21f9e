//! `driver-patches/`: source fixes for driver versions against kernels they predate, chosen by
//! driver-version range and kernel range, applied by a small unified-diff applier (no `patch`
//! binary), and recorded in each build's provenance.

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed diff: {0}")]
    Malformed(String),
    #[error("`{file}`: hunk {hunk} does not match (context not found near line {line})")]
    NoMatch {
        file: String,
        hunk: usize,
        line: usize,
    },
    #[error("`{0}`: file to patch not found")]
    Missing(String),
    #[error("i/o on `{0}`")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("patch index: {0}")]
    Index(String),
}

/// One patch and when it applies.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Patch {
    pub name: String,
    /// Why it exists, for people.
    pub why: String,
    /// Inclusive bounds on the driver version's x.y.z (commit-hash versions never match).
    pub driver_min: Option<String>,
    pub driver_max: Option<String>,
    /// Inclusive lower / exclusive upper bound on the kernel version (x.y).
    pub kernel_min: Option<String>,
    pub kernel_below: Option<String>,
    #[serde(skip_deserializing)]
    pub diff: String,
}

/// The set of known patches.
#[derive(Debug, Clone, Default)]
pub struct Catalog(pub Vec<Patch>);

/// Patches that ship inside the binary (the repository's `driver-patches/`).
const EMBEDDED_INDEX: &str = include_str!("../driver-patches/index.json");
const EMBEDDED: &[(&str, &str)] = &[
    (
        "kernfs-node-parent-rename.patch",
        include_str!("../driver-patches/kernfs-node-parent-rename.patch"),
    ),
    (
        "rss-stat-array.patch",
        include_str!("../driver-patches/rss-stat-array.patch"),
    ),
    (
        "inode-timestamps-6.11-4.x.patch",
        include_str!("../driver-patches/inode-timestamps-6.11-4.x.patch"),
    ),
    (
        "inode-timestamps-6.11-6.0.1.patch",
        include_str!("../driver-patches/inode-timestamps-6.11-6.0.1.patch"),
    ),
    (
        "inode-timestamps-6.11-7.0.patch",
        include_str!("../driver-patches/inode-timestamps-6.11-7.0.patch"),
    ),
    (
        "kernel-cap-u64-3.x.patch",
        include_str!("../driver-patches/kernel-cap-u64-3.x.patch"),
    ),
    (
        "kernel-cap-u64-4.0.patch",
        include_str!("../driver-patches/kernel-cap-u64-4.0.patch"),
    ),
    (
        "dentry-name-const-6.18.patch",
        include_str!("../driver-patches/dentry-name-const-6.18.patch"),
    ),
];

fn semver3(s: &str) -> Option<(u64, u64, u64)> {
    // Leading digits of each part: "0.1.1dev+git2022..." -> (0, 1, 1). A bare commit hash
    // has no dots and never matches a range.
    if !s.contains('.') {
        return None;
    }
    let core = s.split(['+', '-']).next()?;
    let num = |p: &str| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .ok()
    };
    let mut it = core.split('.').map(num);
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

impl Catalog {
    /// The patches built into probeforge.
    pub fn embedded() -> Catalog {
        Self::from_index(EMBEDDED_INDEX, |f| {
            EMBEDDED
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(_, d)| d.to_string())
                .ok_or_else(|| Error::Index(format!("embedded patch `{f}` missing")))
        })
        .expect("embedded patch index is valid")
    }

    /// A user's patch directory with its own `index.json`.
    pub fn from_dir(dir: &Path) -> Result<Catalog, Error> {
        let idx = dir.join("index.json");
        let text = fs::read_to_string(&idx).map_err(|e| Error::Io(idx.clone(), e))?;
        Self::from_index(&text, |f| {
            let p = dir.join(f);
            fs::read_to_string(&p).map_err(|e| Error::Io(p, e))
        })
    }

    fn from_index(
        text: &str,
        load: impl Fn(&str) -> Result<String, Error>,
    ) -> Result<Catalog, Error> {
        let mut v: Vec<Patch> =
            serde_json::from_str(text).map_err(|e| Error::Index(e.to_string()))?;
        for p in &mut v {
            p.diff = load(&p.name)?;
        }
        Ok(Catalog(v))
    }

    /// Patches for this driver version and kernel, in index order.
    pub fn matching(&self, driver: &str, kernel: (u32, u32, u32)) -> Vec<&Patch> {
        let k = (kernel.0 as u64, kernel.1 as u64, kernel.2 as u64);
        self.0
            .iter()
            .filter(|p| {
                let Some(d) = semver3(driver) else {
                    return false;
                };
                let ok = |b: &Option<String>, f: fn(_, _) -> bool, v| {
                    b.as_deref().and_then(semver3).is_none_or(|b| f(v, b))
                };
                ok(&p.driver_min, |v, b| v >= b, d)
                    && ok(&p.driver_max, |v, b| v <= b, d)
                    && ok(&p.kernel_min, |v, b| v >= b, k)
                    && ok(&p.kernel_below, |v, b| v < b, k)
            })
            .collect()
    }
}

struct Hunk {
    old_start: usize,
    old: Vec<String>,
    new: Vec<String>,
}

struct FilePatch {
    path: String,
    hunks: Vec<Hunk>,
}

fn parse(diff: &str) -> Result<Vec<FilePatch>, Error> {
    let mut files: Vec<FilePatch> = Vec::new();
    let lines: Vec<&str> = diff.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(p) = l.strip_prefix("+++ ") {
            let p = p.split('\t').next().unwrap_or(p).trim();
            let p = p.split_once('/').map(|(_, r)| r).unwrap_or(p);
            files.push(FilePatch {
                path: p.to_owned(),
                hunks: Vec::new(),
            });
        } else if let Some(h) = l.strip_prefix("@@ -") {
            let f = files
                .last_mut()
                .ok_or_else(|| Error::Malformed("hunk before any +++ line".into()))?;
            let old_start: usize = h
                .split([',', ' '])
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::Malformed(format!("bad hunk header `{l}`")))?;
            let mut hunk = Hunk {
                old_start,
                old: Vec::new(),
                new: Vec::new(),
            };
            i += 1;
            while i < lines.len() && !lines[i].starts_with("@@ ") && !lines[i].starts_with("--- ") {
                let t = lines[i];
                match t.chars().next() {
                    Some(' ') | None => {
                        let s = t.get(1..).unwrap_or("").to_owned();
                        hunk.old.push(s.clone());
                        hunk.new.push(s);
                    }
                    Some('-') => hunk.old.push(t[1..].to_owned()),
                    Some('+') => hunk.new.push(t[1..].to_owned()),
                    Some('\\') => {}
                    _ => break,
                }
                i += 1;
            }
            f.hunks.push(hunk);
            continue;
        }
        i += 1;
    }
    if files.is_empty() {
        return Err(Error::Malformed("no files in diff".into()));
    }
    Ok(files)
}

/// Applies a unified diff to `text` (one file's hunks), allowing the hunk to have moved.
fn apply_hunks(path: &str, text: &str, hunks: &[Hunk]) -> Result<String, Error> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut shift: isize = 0;
    for (n, h) in hunks.iter().enumerate() {
        let want = (h.old_start as isize - 1 + shift).max(0) as usize;
        // Lines compare with white space folded, as `patch -l` does: the same fix then applies
        // to drivers formatted before and after libs adopted clang-format.
        let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let fits = |at: usize| {
            at + h.old.len() <= lines.len()
                && lines[at..at + h.old.len()]
                    .iter()
                    .zip(&h.old)
                    .all(|(a, b)| fold(a) == fold(b))
        };
        let at = (0..=lines.len())
            .flat_map(|d| [want.checked_add(d), want.checked_sub(d)])
            .flatten()
            .take(2 * lines.len() + 2)
            .find(|&a| fits(a))
            .ok_or_else(|| Error::NoMatch {
                file: path.to_owned(),
                hunk: n + 1,
                line: h.old_start,
            })?;
        lines.splice(at..at + h.old.len(), h.new.iter().cloned());
        shift += h.new.len() as isize - h.old.len() as isize + (at as isize - want as isize);
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Applies a diff to files under `tree`. A path missing as given is looked up by its file name
/// in `bpf/` (drivers from 7.1.0+driver on have `driver/*.h` beside probe.c), then at the top
/// (older drivers have them one level up, as their dkms install does).
pub fn apply_to_tree(diff: &str, tree: &Path) -> Result<(), Error> {
    for f in parse(diff)? {
        let name = Path::new(&f.path)
            .file_name()
            .ok_or_else(|| Error::Missing(f.path.clone()))?;
        let target = [
            tree.join(&f.path),
            tree.join("bpf").join(name),
            tree.join(name),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing(f.path.clone()))?;
        let text = fs::read_to_string(&target).map_err(|e| Error::Io(target.clone(), e))?;
        let out = apply_hunks(&f.path, &text, &f.hunks)?;
        fs::write(&target, out).map_err(|e| Error::Io(target.clone(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_context_hunks_ignore_white_space() {
        let diff = "--- a/x.h\n+++ b/x.h\n@@ -3 +3 @@\n-\tkn = _READ(kn->parent);\n+\tkn = _READ(kn->__parent);\n";
        let hunks = &parse(diff).unwrap()[0].hunks;
        let out = apply_hunks("x.h", "a\nb\nc\n    kn  = _READ(kn->parent);\nd\n", hunks).unwrap();
        assert_eq!(out, "a\nb\nc\n\tkn = _READ(kn->__parent);\nd\n");
    }

    #[test]
    fn applies_moved_hunks_and_refuses_wrong_context() {
        let diff = "--- a/x.h\n+++ b/x.h\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n";
        let hunks = &parse(diff).unwrap()[0].hunks;
        assert_eq!(
            apply_hunks("x.h", "a\nb\nc\nd\n", hunks).unwrap(),
            "a\nb\nC\nd\n"
        );
        assert_eq!(
            apply_hunks("x.h", "z\nz\na\nb\nc\nd\n", hunks).unwrap(),
            "z\nz\na\nb\nC\nd\n"
        );
        assert!(matches!(
            apply_hunks("x.h", "a\nb\nX\nd\n", hunks),
            Err(Error::NoMatch { .. })
        ));
    }

    #[test]
    fn embedded_catalog_matches_by_ranges() {
        let c = Catalog::embedded();
        assert!(!c.0.is_empty());
        assert!(c.matching("8.0.0+driver", (6, 1, 0)).is_empty());
        assert!(!c.matching("8.0.0+driver", (7, 2, 0)).is_empty());
        assert!(c
            .matching("e5c53d648f3c4694385bbe488e7d47eaa36c229a", (7, 2, 0))
            .is_empty());
        // kernel_cap_t's u64 from 6.3, d_name's const from 6.18, each for the drivers before
        // the release that read them right.
        let names =
            |d, k| -> Vec<String> { c.matching(d, k).iter().map(|p| p.name.clone()).collect() };
        assert!(names("4.0.0+driver", (6, 1, 0)).is_empty());
        assert_eq!(names("3.0.1+driver", (6, 2, 0)), ["rss-stat-array.patch"]);
        assert!(names("3.0.1+driver", (6, 12, 0)).contains(&"kernel-cap-u64-3.x.patch".into()));
        assert!(!names("3.0.1+driver", (6, 17, 0)).contains(&"dentry-name-const-6.18.patch".into()));
        assert!(names("4.0.0+driver", (6, 18, 0)).contains(&"dentry-name-const-6.18.patch".into()));
        assert!(names("6.0.1+driver", (7, 3, 0))
            .iter()
            .all(|n| !n.starts_with("kernel-cap") && !n.starts_with("dentry")));
    }

    #[test]
    fn every_embedded_patch_parses() {
        for p in &Catalog::embedded().0 {
            assert!(!parse(&p.diff).unwrap().is_empty(), "{}", p.name);
        }
    }
}

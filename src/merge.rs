//! `probeforge merge OUT IN...`: the shards of a batch, each a complete repository of its part,
//! made one. Every input is checked against its own `SHA256SUMS` and `index.json` first, and
//! every file against its record as it is read; two different bytes under one name (between
//! inputs, or against what `OUT` already holds) are refused, all of them named, before anything
//! is written. The result is what one run over every shard's kernels would have written: the
//! same files, records, failures and indexes, byte for byte (with `SOURCE_DATE_EPOCH`).
//!
//! Never replaces a published file; never writes into an input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::publish::{FailureRecord, LocalRepo, ProbeMeta, Published};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}` is not a directory (a shard's repository)", .0.display())]
    NotADirectory(PathBuf),
    #[error("`{}` is both the output and an input", .0.display())]
    OutputIsInput(PathBuf),
    #[error("shard `{}` does not match its own indexes ({count} problems; first: {first})", input.display())]
    Damaged {
        input: PathBuf,
        count: usize,
        first: String,
    },
    #[error("`{name}` in `{}` is not the bytes its record says (sha256 {found}, recorded {recorded})", input.display())]
    Changed {
        input: PathBuf,
        name: String,
        found: String,
        recorded: String,
    },
    #[error("{} name(s) with different bytes, nothing merged: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Conflicts(Vec<Conflict>),
    #[error(transparent)]
    Check(#[from] crate::check::Error),
    #[error(transparent)]
    Publish(#[from] crate::publish::Error),
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One name, two different contents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// `<driver-version>/<arch>/<file>`.
    pub name: String,
    pub first: (String, String),
    pub second: (String, String),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is sha256 {} in `{}` but {} in `{}`",
            self.name,
            short(&self.first.1),
            self.first.0,
            short(&self.second.1),
            self.second.0
        )
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

/// What a merge did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Merged {
    pub output: PathBuf,
    pub inputs: usize,
    /// Files added to the output, and files it already had with the same bytes.
    pub new: usize,
    pub unchanged: usize,
    /// Failures kept (kernels no input published a driver for).
    pub failures: usize,
    /// Every file the output now lists.
    pub published: usize,
}

fn name(m: &ProbeMeta) -> String {
    format!("{}/{}/{}", m.driver_version, m.arch, m.file)
}

/// Merges `inputs` into `out` (created when missing; a repository already there is added to).
pub fn merge(out: &LocalRepo, inputs: &[PathBuf]) -> Result<Merged, Error> {
    let out_dir = std::fs::canonicalize(&out.root).ok();
    for i in inputs {
        if !i.is_dir() {
            return Err(Error::NotADirectory(i.clone()));
        }
        if out_dir.is_some() && std::fs::canonicalize(i).ok() == out_dir {
            return Err(Error::OutputIsInput(i.clone()));
        }
        // The shard must be what its own indexes say before anything of it is taken.
        let report = crate::check::check(&i.display().to_string(), None, None)?;
        if let Some(first) = report.problems.first() {
            return Err(Error::Damaged {
                input: i.clone(),
                count: report.problems.len(),
                first: first.to_string(),
            });
        }
    }
    // Every name once: (its record, the input it comes from). The output's own records
    // count as an input that comes first.
    let mut chosen: BTreeMap<String, (ProbeMeta, String)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut offered = std::collections::BTreeSet::new();
    let here = out.root.display().to_string();
    let sources = std::iter::once((out.root.clone(), here.clone()))
        .chain(inputs.iter().map(|i| (i.clone(), i.display().to_string())));
    for (dir, label) in sources {
        if !dir.is_dir() {
            continue;
        }
        for m in LocalRepo::new(&dir).entries()? {
            let n = name(&m);
            if label != here {
                offered.insert(n.clone());
            }
            match chosen.get(&n) {
                Some((had, from)) if had.sha256 != m.sha256 => conflicts.push(Conflict {
                    name: n,
                    first: (from.clone(), had.sha256.clone()),
                    second: (label.clone(), m.sha256.clone()),
                }),
                // The same bytes: the earliest record is kept (when they were first built).
                Some((had, _)) if had.built_at <= m.built_at => {}
                _ => {
                    chosen.insert(n, (m, label.clone()));
                }
            }
        }
    }
    // A file in the output with no record is still a name taken.
    for (n, (m, from)) in &chosen {
        let p = out.probe_path(&m.driver_version, &m.arch, &m.file);
        if from != &here && p.is_file() {
            let bytes = std::fs::read(&p).map_err(|source| Error::Read {
                path: p.clone(),
                source,
            })?;
            let found = crate::base::sha256(&bytes);
            if found != m.sha256 {
                conflicts.push(Conflict {
                    name: n.clone(),
                    first: (here.clone(), found),
                    second: (from.clone(), m.sha256.clone()),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflicts(conflicts));
    }
    // Failures: the latest of each name, unless some input published it.
    let mut failures: BTreeMap<String, FailureRecord> = BTreeMap::new();
    for i in inputs {
        for f in LocalRepo::new(i).failures()? {
            let n = format!("{}/{}/{}", f.driver_version, f.arch, f.file);
            if chosen.contains_key(&n) {
                continue;
            }
            let newer = failures
                .get(&n)
                .is_none_or(|had| (&f.at, &f.log) > (&had.at, &had.log));
            if newer {
                failures.insert(n, f);
            }
        }
    }
    let (mut new, mut unchanged) = (0, 0);
    for (n, (m, from)) in &chosen {
        if from == &here {
            unchanged += usize::from(offered.contains(n));
            continue;
        }
        let p = LocalRepo::new(Path::new(from)).probe_path(&m.driver_version, &m.arch, &m.file);
        let bytes = std::fs::read(&p).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?;
        let found = crate::base::sha256(&bytes);
        if found != m.sha256 {
            return Err(Error::Changed {
                input: PathBuf::from(from),
                name: n.clone(),
                found,
                recorded: m.sha256.clone(),
            });
        }
        match out.import(m, &bytes)? {
            Published::New => new += 1,
            Published::Unchanged | Published::Restored => unchanged += 1,
        }
    }
    for f in failures.values() {
        out.import_failure(f)?;
    }
    let published = out.reindex()?;
    Ok(Merged {
        output: out.root.clone(),
        inputs: inputs.len(),
        new,
        unchanged,
        failures: out.failures()?.len(),
        published,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(dv: &str, file: &str, bytes: &[u8]) -> ProbeMeta {
        ProbeMeta {
            driver_version: dv.into(),
            arch: "x86_64".into(),
            target_id: "debian".into(),
            kernel_release: "6.1.0-1-amd64".into(),
            kernel_version: "1".into(),
            file: file.into(),
            size: bytes.len() as u64,
            sha256: crate::base::sha256(bytes),
            inputs: vec![],
            driver_source_sha256: "0".repeat(64),
            patches: vec![],
            toolchain: "clang 14.0.6".into(),
            flags_sha256: "0".repeat(64),
            built_at: "2026-01-01T00:00:00Z".into(),
            unsigned_metadata: false,
            verified: None,
            signed_by: None,
        }
    }

    fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn shards_merge_into_what_one_repository_would_hold() {
        let t = tempfile::tempdir().unwrap();
        let (one, a, b) = (t.path().join("one"), t.path().join("a"), t.path().join("b"));
        let probes: Vec<(ProbeMeta, Vec<u8>)> = (0..5)
            .map(|i| {
                let bytes = format!("probe {i}").into_bytes();
                (meta("9.1.0+driver", &format!("falco_{i}.o"), &bytes), bytes)
            })
            .collect();
        let whole = LocalRepo::new(&one);
        for (i, (m, bytes)) in probes.iter().enumerate() {
            whole.publish(m, bytes).unwrap();
            let shard = LocalRepo::new(if i % 2 == 0 { &a } else { &b });
            shard.publish(m, bytes).unwrap();
        }
        let merged = t.path().join("merged");
        let r = merge(&LocalRepo::new(&merged), &[a.clone(), b.clone()]).unwrap();
        assert_eq!((r.new, r.published), (5, 5));
        assert_eq!(tree(&merged), tree(&one));
        // Again: nothing new, nothing changed.
        let r = merge(&LocalRepo::new(&merged), &[a.clone(), b.clone()]).unwrap();
        assert_eq!((r.new, r.unchanged), (0, 5));
        assert_eq!(tree(&merged), tree(&one));
    }

    #[test]
    fn two_bytes_under_one_name_are_refused_before_anything_is_written() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let m1 = meta("9.1.0+driver", "falco_x.o", b"one");
        let m2 = meta("9.1.0+driver", "falco_x.o", b"two");
        LocalRepo::new(&a).publish(&m1, b"one").unwrap();
        LocalRepo::new(&b).publish(&m2, b"two").unwrap();
        let other = meta("9.1.0+driver", "falco_y.o", b"y");
        LocalRepo::new(&b).publish(&other, b"y").unwrap();
        let out = t.path().join("out");
        let e = merge(&LocalRepo::new(&out), &[a, b]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("9.1.0+driver/x86_64/falco_x.o") && text.contains("nothing merged"),
            "{text}"
        );
        assert!(!out.exists(), "nothing written");
    }

    #[test]
    fn a_damaged_shard_is_named() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let m = meta("9.1.0+driver", "falco_x.o", b"one");
        let repo = LocalRepo::new(&a);
        repo.publish(&m, b"one").unwrap();
        std::fs::write(
            repo.probe_path("9.1.0+driver", "x86_64", "falco_x.o"),
            b"eno",
        )
        .unwrap();
        let e = merge(
            &LocalRepo::new(&t.path().join("out")),
            std::slice::from_ref(&a),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Damaged { input, .. } if input == &a),
            "{e}"
        );
    }
}

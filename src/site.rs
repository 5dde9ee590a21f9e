//! The repository's own static site: `index.html` and `site/` (its small script, styles and
//! data), readable from `file://`, any static server, GitHub Pages or an air-gapped mirror.
//! It shows, per target, every kernel the target ships against every driver version, kind and
//! arch (published, verified in a VM, failed and why, or not built yet), newest kernels first,
//! a search by `uname -r` that names the exact file Falco's loaders download, and the build
//! times of the run that wrote it.
//!
//! Rendering is pure (records in, bytes out, sorted: the same records give the same bytes); the
//! page never loads anything from elsewhere. The data is a script (`window.PROBEFORGE = ...`)
//! rather than JSON because browsers refuse `fetch()` of a file beside a `file://` page.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::base::write_atomic;
use crate::publish::{FailureRecord, ProbeMeta};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the site file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The page, its script and styles: written as they are (the data is the only generated file).
const INDEX_HTML: &str = include_str!("../site/index.html");
const APP_JS: &str = include_str!("../site/app.js");
const APP_CSS: &str = include_str!("../site/app.css");

/// The format tag of the site's data (`window.PROBEFORGE.format`).
pub const DATA_FORMAT: &str = "probeforge-site-1";

/// One kernel a target ships (from its listing or a list file), whether or not it was built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Shipped {
    /// The catalog target (`debian-bookworm`).
    pub target: String,
    /// Falco's target id in file names (`debian`).
    pub target_id: String,
    /// `uname -m`.
    pub arch: String,
    pub release: String,
    /// The number after `#` in `uname -v`.
    pub kernel_version: String,
    /// The release in Falco's file name (Debian: package version and flavour), where it is
    /// not `release`.
    pub file_release: Option<String>,
}

impl From<&crate::repo::KernelRecord> for Shipped {
    fn from(k: &crate::repo::KernelRecord) -> Shipped {
        Shipped {
            target: k.target.clone(),
            target_id: k.target_id.clone(),
            arch: k.arch.uname_m().to_owned(),
            release: k.release.clone(),
            kernel_version: k.kernel_version.clone(),
            file_release: Some(k.file_release()).filter(|r| *r != k.release),
        }
    }
}

/// The release part of a recorded file name (`falco_<target-id>_<release>_<version>.o`), where
/// it is not the kernel's `uname -r`.
fn named_release(
    file: &str,
    target_id: &str,
    kernel_version: &str,
    release: &str,
) -> Option<String> {
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".o"))?;
    let named = stem
        .strip_prefix(&format!("falco_{target_id}_"))?
        .strip_suffix(&format!("_{kernel_version}"))?;
    (named != release).then(|| named.to_owned())
}

/// The build times of the run that writes the site (never stored in the repository's
/// indexes: they would make two runs' bytes differ).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Times {
    /// Seconds of each probe or module built (or failed) by the run.
    pub seconds: Vec<f64>,
    /// The run's wall-clock seconds.
    pub run_seconds: f64,
}

/// Everything the site shows.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub probes: Vec<ProbeMeta>,
    pub failures: Vec<FailureRecord>,
    pub shipped: Vec<Shipped>,
    pub times: Option<Times>,
    /// When the data was made (RFC 3339), shown on the page; `None` keeps the bytes free of
    /// the clock.
    pub generated: Option<String>,
}

/// The files of the site: (path relative to the repository, bytes).
pub fn render(input: &Input) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("index.html", INDEX_HTML.as_bytes().to_vec()),
        ("site/app.js", APP_JS.as_bytes().to_vec()),
        ("site/app.css", APP_CSS.as_bytes().to_vec()),
        ("site/data.js", data_js(input).into_bytes()),
    ]
}

/// What [`write`] wrote, and what the page shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Kernel rows (shipped or known to the repository).
    pub kernels: usize,
    pub published: usize,
    pub verified: usize,
    pub failed: usize,
    /// Cells of a shipped kernel with neither a probe nor a failure.
    pub not_built: usize,
    /// Bytes of the page's own code (HTML, script, styles) and of its data.
    pub code_bytes: usize,
    pub data_bytes: usize,
}

/// Writes the site into the repository at `root` (each file atomically; the data last).
pub fn write(root: &Path, input: &Input) -> Result<Written, Error> {
    let model = Model::new(input);
    let mut w = Written {
        kernels: model.kernels.len(),
        published: model.published.len(),
        verified: model
            .published
            .iter()
            .filter(|p| p.verified.is_some())
            .count(),
        failed: model.failed.len(),
        not_built: model.not_built(),
        ..Written::default()
    };
    let mut files = render(input);
    files.push((
        "site/delays.js",
        delays_js(&time_to_driver(root, &input.probes)).into_bytes(),
    ));
    // The data after the code: a reader between the two sees old data with new code, which
    // copes (it checks the format), never new data with an old script.
    files.sort_by_key(|(name, _)| *name == "site/data.js");
    for (name, bytes) in files {
        let path = root.join(name);
        write_atomic(&path, &bytes).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        match name {
            "site/data.js" | "site/delays.js" => w.data_bytes += bytes.len(),
            _ => w.code_bytes += bytes.len(),
        }
        w.files.push(path);
    }
    Ok(w)
}

/// A kernel row: a shipped kernel, or one the repository knows only by its records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    target: String,
    target_id: String,
    arch: String,
    release: String,
    kernel_version: String,
    listed: bool,
    file_release: Option<String>,
    /// The other catalog targets shipping this kernel (`debian` beside `debian-bookworm`):
    /// the row counts in each one's coverage and search.
    also: Vec<String>,
}

/// A column: driver version x kind x arch.
type Col = (String, &'static str, String);

/// A published file and its cell.
struct Pub<'a> {
    row: usize,
    col: usize,
    meta: &'a ProbeMeta,
    verified: Option<&'a str>,
}

struct Fail<'a> {
    row: usize,
    col: usize,
    rec: &'a FailureRecord,
}

/// The records arranged as the page shows them: rows sorted by target, arch and newest
/// release first; columns sorted; every cell found by index.
struct Model<'a> {
    kernels: Vec<Row>,
    cols: Vec<Col>,
    published: Vec<Pub<'a>>,
    failed: Vec<Fail<'a>>,
}

fn kind_of(file: &str) -> &'static str {
    match file.ends_with(".ko") {
        true => "kmod",
        false => "ebpf",
    }
}

/// Newest first, by Debian's version order (which compares the numbers in `6.1.0-10` as
/// numbers); the same order for every release string, so the bytes are stable.
fn newest_first(a: &str, b: &str) -> Ordering {
    crate::repo::apt::compare_versions(b, a).then_with(|| a.cmp(b))
}

impl<'a> Model<'a> {
    fn new(input: &'a Input) -> Model<'a> {
        // A kernel is (target id, arch, release, kernel version): the file name's parts.
        type Key = (String, String, String, String);
        let mut rows: BTreeMap<Key, Row> = BTreeMap::new();
        for s in &input.shipped {
            let key = (
                s.target_id.clone(),
                s.arch.clone(),
                s.release.clone(),
                s.kernel_version.clone(),
            );
            // Two targets shipping the same kernel (a suite and its -security): the first
            // by name keeps the row.
            let row = Row {
                target: s.target.clone(),
                target_id: s.target_id.clone(),
                arch: s.arch.clone(),
                release: s.release.clone(),
                kernel_version: s.kernel_version.clone(),
                listed: true,
                file_release: s.file_release.clone(),
                also: Vec::new(),
            };
            match rows.get_mut(&key) {
                Some(r) if r.target == row.target => {}
                Some(r) if r.target < row.target => {
                    if !r.also.contains(&row.target) {
                        r.also.push(row.target);
                        r.also.sort();
                    }
                }
                Some(r) => {
                    let first = std::mem::replace(r, row);
                    r.also = first.also;
                    r.also.push(first.target);
                    r.also.sort();
                    r.also.dedup();
                }
                None => {
                    rows.insert(key, row);
                }
            }
        }
        let mut known = |target_id: &str, arch: &str, release: &str, version: &str, file: &str| {
            let key = (
                target_id.to_owned(),
                arch.to_owned(),
                release.to_owned(),
                version.to_owned(),
            );
            rows.entry(key).or_insert_with(|| Row {
                // Known only by its records: its target id stands for the target.
                target: target_id.to_owned(),
                target_id: target_id.to_owned(),
                arch: arch.to_owned(),
                release: release.to_owned(),
                kernel_version: version.to_owned(),
                listed: false,
                file_release: named_release(file, target_id, version, release),
                also: Vec::new(),
            });
        };
        for p in &input.probes {
            known(
                &p.target_id,
                &p.arch,
                &p.kernel_release,
                &p.kernel_version,
                &p.file,
            );
        }
        for f in &input.failures {
            known(
                &f.target_id,
                &f.arch,
                &f.kernel_release,
                &f.kernel_version,
                &f.file,
            );
        }
        let mut kernels: Vec<Row> = rows.into_values().collect();
        kernels.sort_by(|a, b| {
            (&a.target, &a.arch)
                .cmp(&(&b.target, &b.arch))
                .then_with(|| newest_first(&a.release, &b.release))
                .then_with(|| newest_first(&a.kernel_version, &b.kernel_version))
        });
        let index: BTreeMap<(&str, &str, &str, &str), usize> = kernels
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    (
                        r.target_id.as_str(),
                        r.arch.as_str(),
                        r.release.as_str(),
                        r.kernel_version.as_str(),
                    ),
                    i,
                )
            })
            .collect();
        let mut cols: Vec<Col> = input
            .probes
            .iter()
            .map(|p| (p.driver_version.clone(), kind_of(&p.file), p.arch.clone()))
            .chain(
                input
                    .failures
                    .iter()
                    .map(|f| (f.driver_version.clone(), kind_of(&f.file), f.arch.clone())),
            )
            .collect();
        cols.sort();
        cols.dedup();
        let col = |dv: &str, file: &str, arch: &str| {
            cols.binary_search(&(dv.to_owned(), kind_of(file), arch.to_owned()))
                .expect("every record has its column")
        };
        let mut published: Vec<Pub> = input
            .probes
            .iter()
            .map(|p| Pub {
                row: index[&(
                    p.target_id.as_str(),
                    p.arch.as_str(),
                    p.kernel_release.as_str(),
                    p.kernel_version.as_str(),
                )],
                col: col(&p.driver_version, &p.file, &p.arch),
                meta: p,
                verified: p.verified.as_deref(),
            })
            .collect();
        published.sort_by_key(|p| (p.row, p.col));
        let mut failed: Vec<Fail> = input
            .failures
            .iter()
            .map(|f| Fail {
                row: index[&(
                    f.target_id.as_str(),
                    f.arch.as_str(),
                    f.kernel_release.as_str(),
                    f.kernel_version.as_str(),
                )],
                col: col(&f.driver_version, &f.file, &f.arch),
                rec: f,
            })
            .collect();
        failed.sort_by_key(|f| (f.row, f.col));
        Model {
            kernels,
            cols,
            published,
            failed,
        }
    }

    /// Cells of a kernel's arch with neither a probe nor a failure.
    fn not_built(&self) -> usize {
        let mut filled = std::collections::BTreeSet::new();
        filled.extend(self.published.iter().map(|p| (p.row, p.col)));
        filled.extend(self.failed.iter().map(|f| (f.row, f.col)));
        let mut n = 0;
        for (r, k) in self.kernels.iter().enumerate() {
            for (c, col) in self.cols.iter().enumerate() {
                if col.2 == k.arch && !filled.contains(&(r, c)) {
                    n += 1;
                }
            }
        }
        n
    }
}

/// The data script: compact arrays with short keys (the page's `app.js` reads them), so that
/// ten thousand entries stay small.
fn data_js(input: &Input) -> String {
    use serde_json::{json, Value};
    let m = Model::new(input);
    // Targets, in row order: [name, target id].
    let mut targets: Vec<(&str, &str)> = Vec::new();
    let mut target_of = Vec::with_capacity(m.kernels.len());
    for k in &m.kernels {
        if targets.last() != Some(&(k.target.as_str(), k.target_id.as_str())) {
            targets.push((&k.target, &k.target_id));
        }
        target_of.push(targets.len() - 1);
    }
    // Catalog targets that ship only kernels another target's row stands for come after the
    // rows' own: `a` gives each such row's other targets, by index.
    let mut also: Vec<Value> = Vec::new();
    for (r, k) in m.kernels.iter().enumerate() {
        if k.also.is_empty() {
            continue;
        }
        let mut idx = Vec::new();
        for t in &k.also {
            let i = match targets
                .iter()
                .position(|(n, id)| *n == t.as_str() && *id == k.target_id.as_str())
            {
                Some(i) => i,
                None => {
                    targets.push((t, &k.target_id));
                    targets.len() - 1
                }
            };
            idx.push(i);
        }
        also.push(json!([r, idx]));
    }
    let kernels: Vec<Value> = m
        .kernels
        .iter()
        .zip(&target_of)
        .map(|(k, t)| match &k.file_release {
            // The release in Falco's file name, where it is not uname -r (Debian).
            Some(f) => json!([
                t,
                k.arch,
                k.release,
                k.kernel_version,
                u8::from(k.listed),
                f
            ]),
            None => json!([t, k.arch, k.release, k.kernel_version, u8::from(k.listed)]),
        })
        .collect();
    let cols: Vec<Value> = m.cols.iter().map(|(d, k, a)| json!([d, k, a])).collect();
    let published: Vec<Value> = m
        .published
        .iter()
        .map(|p| {
            let mut v = json!([p.row, p.col, p.meta.size, p.meta.sha256]);
            if let Some(why) = p.verified {
                v.as_array_mut().expect("an array").push(json!(why));
            }
            v
        })
        .collect();
    let failed: Vec<Value> = m
        .failed
        .iter()
        .map(|f| json!([f.row, f.col, f.rec.reason, f.rec.at]))
        .collect();
    let times = input.times.as_ref().map(|t| {
        // Tenths of a second: enough for a histogram, and short.
        let mut s: Vec<f64> = t
            .seconds
            .iter()
            .map(|s| (s * 10.0).round() / 10.0)
            .collect();
        s.sort_by(f64::total_cmp);
        json!({"s": s, "run": (t.run_seconds * 10.0).round() / 10.0})
    });
    let data = json!({
        "format": DATA_FORMAT,
        "generated": input.generated,
        "t": targets.iter().map(|(n, id)| json!([n, id])).collect::<Vec<_>>(),
        "k": kernels,
        "c": cols,
        "p": published,
        "f": failed,
        "a": also,
        "times": times,
    });
    format!(
        "window.PROBEFORGE = {};\n",
        serde_json::to_string(&data).expect("serializable")
    )
}

/// Time to driver of one target: how long after a kernel first appeared in a signed index
/// its driver was published (`published - first_seen`, as `probeforge watch` records them), in
/// seconds, over every published file that has both.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delays {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Delays {
    /// `None` for no values. Nearest-rank percentiles (a value that occurred).
    pub fn of(mut secs: Vec<f64>) -> Option<Delays> {
        if secs.is_empty() {
            return None;
        }
        secs.sort_by(f64::total_cmp);
        let rank =
            |q: f64| secs[((q * secs.len() as f64).ceil() as usize).clamp(1, secs.len()) - 1];
        Some(Delays {
            n: secs.len(),
            min: secs[0],
            median: rank(0.5),
            p90: rank(0.9),
            max: secs[secs.len() - 1],
        })
    }
}

/// Seconds since the epoch of an RFC 3339 UTC stamp as probeforge writes them
/// (`2026-12-06T15:04:05Z`).
fn epoch(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm, the inverse of `base::utc`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

/// Per target id, the time to driver of the published files of the repository at `root`.
pub fn time_to_driver(root: &Path, probes: &[ProbeMeta]) -> BTreeMap<String, Delays> {
    let repo = crate::publish::LocalRepo::new(root);
    let mut by_target: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in probes {
        let st = repo.stamps(&p.driver_version, &p.arch, &p.file);
        let (Some(seen), Some(published)) = (
            st.first_seen.as_deref().and_then(epoch),
            st.published.as_deref().and_then(epoch),
        ) else {
            continue;
        };
        by_target
            .entry(p.target_id.clone())
            .or_default()
            .push((published - seen) as f64);
    }
    by_target
        .into_iter()
        .filter_map(|(t, s)| Delays::of(s).map(|d| (t, d)))
        .collect()
}

/// The delays' script, beside the data (`window.PROBEFORGE_DELAYS`).
fn delays_js(d: &BTreeMap<String, Delays>) -> String {
    format!(
        "window.PROBEFORGE_DELAYS = {};\n",
        serde_json::to_string(d).expect("serializable")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_driver_reads_the_stamps_and_ranks_them() {
        assert_eq!(epoch("1970-01-01T00:00:00Z"), Some(0));
        for secs in [951_782_400, 1_700_000_000, 1_796_000_000] {
            assert_eq!(epoch(&crate::base::utc(secs)), Some(secs));
        }
        assert_eq!(epoch("2026-12-06 15:00:00"), None);
        let d = Delays::of((1..=10).map(|s| s as f64 * 60.0).collect()).unwrap();
        assert_eq!(
            (d.n, d.min, d.median, d.p90, d.max),
            (10, 60.0, 300.0, 540.0, 600.0)
        );
        assert_eq!(Delays::of(vec![]), None);

        let t = tempfile::tempdir().unwrap();
        let repo = crate::publish::LocalRepo::new(t.path());
        let mut a = probe("6.1.0-1-amd64", None);
        a.file = "a.o".into();
        let mut b = probe("6.1.0-2-amd64", None);
        b.file = "b.o".into();
        let stamp = |p: &ProbeMeta, seen: &str, published: &str| {
            let s = crate::publish::Stamps {
                first_seen: Some(seen.into()),
                published: Some(published.into()),
                verified_at: None,
            };
            repo.stamp(&p.driver_version, &p.arch, &p.file, &s).unwrap();
        };
        stamp(&a, "2026-12-06T10:00:00Z", "2026-12-06T10:02:00Z");
        stamp(&b, "2026-12-06T10:00:00Z", "2026-12-06T11:00:00Z");
        let c = probe("6.1.0-3-amd64", None); // no stamps: not counted
        let d = time_to_driver(t.path(), &[a, b, c]);
        let deb = &d["debian"];
        assert_eq!((deb.n, deb.min, deb.max), (2, 120.0, 3600.0));
        assert!(
            delays_js(&d).contains("\"median\":120.0"),
            "{}",
            delays_js(&d)
        );
    }

    fn probe(release: &str, verified: Option<&str>) -> ProbeMeta {
        ProbeMeta {
            driver_version: "8.0.0+driver".into(),
            arch: "x86_64".into(),
            target_id: "debian".into(),
            kernel_release: release.into(),
            kernel_version: "1".into(),
            file: format!("falco_debian_{release}_1.o"),
            size: 3,
            sha256: "ab".repeat(32),
            inputs: vec![],
            driver_source_sha256: String::new(),
            patches: vec![],
            toolchain: String::new(),
            flags_sha256: String::new(),
            built_at: "2026-01-01T00:00:00Z".into(),
            unsigned_metadata: false,
            verified: verified.map(String::from),
            signed_by: None,
        }
    }

    fn shipped(release: &str) -> Shipped {
        Shipped {
            target: "debian-bookworm".into(),
            target_id: "debian".into(),
            arch: "x86_64".into(),
            release: release.into(),
            kernel_version: "1".into(),
            file_release: None,
        }
    }

    fn data(input: &Input) -> serde_json::Value {
        let js = data_js(input);
        let json = js
            .strip_prefix("window.PROBEFORGE = ")
            .and_then(|s| s.strip_suffix(";\n"))
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    /// One kernel shipped by `debian` and `debian-bookworm` is one row standing for both: the
    /// data names the other target (`a`), which the page counts in its coverage and search.
    #[test]
    fn a_kernel_shipped_by_two_targets_of_one_id_is_one_row_of_both() {
        let both = |target: &str| Shipped {
            target: target.into(),
            ..shipped("6.1.0-50-amd64")
        };
        let mut input = Input {
            probes: vec![probe("6.1.0-50-amd64", None)],
            shipped: vec![
                both("debian-bookworm"),
                both("debian"),
                shipped("6.1.0-49-amd64"),
            ],
            ..Input::default()
        };
        // Either order of the listings gives the same data.
        for _ in 0..2 {
            let d = data(&input);
            assert_eq!(d["k"].as_array().unwrap().len(), 2, "{d}");
            assert_eq!(
                d["t"],
                serde_json::json!([["debian", "debian"], ["debian-bookworm", "debian"]])
            );
            assert_eq!(d["a"], serde_json::json!([[0, [1]]]));
            assert_eq!(d["p"][0][0], 0);
            input.shipped.swap(0, 1);
        }
    }

    /// Rows are the shipped kernels (plus what only the records know), newest release first
    /// by version order, not by text (`6.1.0-10` is newer than `6.1.0-9`).
    #[test]
    fn newest_kernels_come_first_by_version_not_text() {
        let input = Input {
            probes: vec![probe("6.1.0-9-amd64", Some("ok: loaded"))],
            shipped: vec![shipped("6.1.0-9-amd64"), shipped("6.1.0-10-amd64")],
            ..Input::default()
        };
        let d = data(&input);
        let releases: Vec<&str> = d["k"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k[2].as_str().unwrap())
            .collect();
        assert_eq!(releases, ["6.1.0-10-amd64", "6.1.0-9-amd64"]);
        // The probe sits in the row of its kernel, verified.
        assert_eq!(d["p"][0][0], 1);
        assert_eq!(d["p"][0][4], "ok: loaded");
        let m = Model::new(&input);
        assert_eq!(m.not_built(), 1);
    }

    /// The same records in another order give the same bytes; no clock unless given.
    #[test]
    fn the_data_is_deterministic() {
        let a = Input {
            probes: vec![probe("6.1.0-1-amd64", None), probe("6.1.0-2-amd64", None)],
            shipped: vec![shipped("6.1.0-3-amd64"), shipped("6.1.0-1-amd64")],
            ..Input::default()
        };
        let mut b = a.clone();
        b.probes.reverse();
        b.shipped.reverse();
        assert_eq!(data_js(&a), data_js(&b));
        assert!(data(&a)["generated"].is_null());
    }

    /// The page loads nothing from elsewhere: no URL with a scheme or a protocol-relative one.
    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            for bad in [
                "http:",
                "https:",
                "src=\"//",
                "href=\"//",
                "url(",
                "@import",
            ] {
                assert!(!text.contains(bad), "{name} contains `{bad}`");
            }
        }
    }
}

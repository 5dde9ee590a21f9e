//! `probeforge check`: is a published repository what its own indexes say it is? Every probe
//! against its directory's `SHA256SUMS` and the top `index.json` (present, same digest, same
//! size, listed once), and each `SHA256SUMS.asc` against a keyring; each mismatch named.
//!
//! `--repair` (a local directory only) rebuilds what its records (`.probeforge/meta/`, else
//! the index.json entry) say it was built from, through the same [`crate::farm::Farm`] as
//! `build-all`, and puts the result in place only when it has the recorded digest. A file that
//! does not match its record is moved aside (`.probeforge/aside/`), never deleted; the indexes
//! are then rebuilt from the records. This module never trusts a digest it has not computed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::http::Client;
use crate::publish::{url_path, LocalRepo, ProbeMeta, SIGNATURE_FILE};
use crate::trust::Keyring;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{what}`")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Fetch(String),
    #[error("--repair needs a local directory; `{0}` is a URL")]
    RepairRemote(String),
    #[error(transparent)]
    Publish(#[from] crate::publish::Error),
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with one file of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Listed, but not there.
    Missing,
    /// There, listed nowhere.
    Unlisted,
    NotInSums,
    NotInIndex,
    /// Its bytes are not what any record says.
    Digest,
    /// Not the size index.json records.
    Size,
    /// SHA256SUMS disagrees with the file and index.json.
    StaleSums,
    /// index.json disagrees with the file and SHA256SUMS.
    StaleIndex,
    /// Listed more than once in one index.
    Duplicate,
    /// An index that cannot be read as one.
    Malformed,
    /// A signature that does not verify, or none where a keyring asks for one.
    Signature,
    /// An alias (index.json's `aliases`) that is not a copy of the probe it names.
    Alias,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    /// Relative to the repository: `<driver-version>/<arch>/<file>`.
    pub path: String,
    pub kind: Kind,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub repo: String,
    /// Probe files looked at.
    pub probes: usize,
    pub problems: Vec<Problem>,
    /// Per directory with a SHA256SUMS: `valid`, `unchecked` (no keyring given), `absent`.
    pub signatures: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The repository's files as read: probes (digest, size), SHA256SUMS lines, index entries.
#[derive(Default)]
struct Seen {
    /// `dv/arch/file` -> (sha256, size) of the files there (a URL: of those listed).
    files: BTreeMap<String, (String, u64)>,
    /// `dv/arch` -> SHA256SUMS text.
    sums: BTreeMap<String, Vec<u8>>,
    /// `dv/arch` -> SHA256SUMS.asc.
    sigs: BTreeMap<String, Vec<u8>>,
    index: Option<Vec<u8>>,
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.display().to_string(),
        source,
    }
}

fn read_local(root: &Path) -> Result<Seen> {
    let mut seen = Seen::default();
    if !root.is_dir() {
        return Err(Error::Io {
            what: root.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    seen.index = fs::read(root.join("index.json")).ok();
    for dv in fs::read_dir(root).map_err(io(root))?.flatten() {
        let dvn = dv.file_name().to_string_lossy().into_owned();
        if dvn.starts_with('.') || !dv.path().is_dir() {
            continue;
        }
        for arch in fs::read_dir(dv.path()).map_err(io(&dv.path()))?.flatten() {
            if !arch.path().is_dir() {
                continue;
            }
            let dir = format!("{dvn}/{}", arch.file_name().to_string_lossy());
            for f in fs::read_dir(arch.path())
                .map_err(io(&arch.path()))?
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                let p = f.path();
                if name == "SHA256SUMS" {
                    seen.sums.insert(dir.clone(), fs::read(&p).map_err(io(&p))?);
                } else if name == SIGNATURE_FILE {
                    seen.sigs.insert(dir.clone(), fs::read(&p).map_err(io(&p))?);
                } else if (name.ends_with(".o") || name.ends_with(".ko")) && p.is_file() {
                    let bytes = fs::read(&p).map_err(io(&p))?;
                    seen.files.insert(
                        format!("{dir}/{name}"),
                        (crate::base::sha256(&bytes), bytes.len() as u64),
                    );
                }
            }
        }
    }
    Ok(seen)
}

/// A URL has no listing: what index.json and each SHA256SUMS name is fetched.
fn read_remote(client: &Client, base: &str) -> Result<Seen> {
    let get = |rel: &str| -> Result<Option<Vec<u8>>> {
        let url = format!("{base}/{rel}");
        let (status, body) = client
            .request("GET", &url, &[], None)
            .map_err(|e| Error::Fetch(e.to_string()))?;
        match status {
            200 => Ok(Some(body)),
            404 | 410 => Ok(None),
            s => Err(Error::Fetch(format!(
                "GET {}: HTTP {s}",
                crate::http::redact(&url)
            ))),
        }
    };
    let mut seen = Seen {
        index: get("index.json")?,
        ..Default::default()
    };
    let mut names: BTreeSet<(String, String, String)> = BTreeSet::new();
    for e in index_entries(seen.index.as_deref()).unwrap_or_default() {
        names.insert((e.driver_version, e.arch, e.file));
    }
    for a in index_aliases(seen.index.as_deref()) {
        names.insert((a.driver_version, a.arch, a.file));
    }
    let dirs: BTreeSet<(String, String)> = names
        .iter()
        .map(|(d, a, _)| (d.clone(), a.clone()))
        .collect();
    for (dv, arch) in dirs {
        let dir = format!("{dv}/{arch}");
        let prefix = format!("{}/{arch}", crate::base::escape_segment(&dv));
        if let Some(s) = get(&format!("{prefix}/SHA256SUMS"))? {
            for (_, file) in parse_sums(&s).0 {
                names.insert((dv.clone(), arch.clone(), file));
            }
            seen.sums.insert(dir.clone(), s);
        }
        if let Some(s) = get(&format!("{prefix}/{SIGNATURE_FILE}"))? {
            seen.sigs.insert(dir, s);
        }
    }
    for (dv, arch, file) in names {
        if let Some(b) = get(&url_path(&dv, &arch, &file))? {
            seen.files.insert(
                format!("{dv}/{arch}/{file}"),
                (crate::base::sha256(&b), b.len() as u64),
            );
        }
    }
    Ok(seen)
}

/// `(sha256, file)` per well-formed line, and the numbers of the lines that are not.
fn parse_sums(text: &[u8]) -> (Vec<(String, String)>, Vec<usize>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in String::from_utf8_lossy(text).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // `sha256sum` writes `<hex>  <name>` (text mode) or `<hex> *<name>` (binary mode).
        let parsed = line.split_once(' ').and_then(|(h, rest)| {
            let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty())
                .then(|| (h.to_ascii_lowercase(), name.to_owned()))
        });
        match parsed {
            Some(p) => ok.push(p),
            None => bad.push(i + 1),
        }
    }
    (ok, bad)
}

/// The probes of an index.json (`None`: not readable as one).
fn index_entries(bytes: Option<&[u8]>) -> Option<Vec<ProbeMeta>> {
    let v: serde_json::Value = serde_json::from_slice(bytes?).ok()?;
    v["probes"]
        .as_array()?
        .iter()
        .map(|p| serde_json::from_value::<ProbeMeta>(p.clone()).ok())
        .collect()
}

/// The aliases an index.json lists (the names Falco's loader asks for on Debian backports;
/// see [`crate::publish::aliases`]); none when it lists none.
fn index_aliases(bytes: Option<&[u8]>) -> Vec<crate::publish::Alias> {
    bytes
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| serde_json::from_value(v["aliases"].clone()).ok())
        .unwrap_or_default()
}

/// Where a repository is: a directory or an HTTP(S) base URL.
pub fn is_url(repo: &str) -> bool {
    repo.starts_with("http://") || repo.starts_with("https://")
}

/// Checks a repository; `keyring` asks for a valid `SHA256SUMS.asc` beside every SHA256SUMS.
pub fn check(repo: &str, client: Option<&Client>, keyring: Option<&Keyring>) -> Result<Report> {
    let (seen, note) = if is_url(repo) {
        let client = client.ok_or_else(|| Error::Fetch("no HTTP client".into()))?;
        (
            read_remote(client, repo.trim_end_matches('/'))?,
            Some("a URL cannot be listed: files that neither index names are not seen".into()),
        )
    } else {
        (read_local(Path::new(repo))?, None)
    };
    let mut problems = Vec::new();
    let mut p = |path: &str, kind: Kind, detail: String| {
        problems.push(Problem {
            path: path.to_owned(),
            kind,
            detail,
        })
    };

    // SHA256SUMS, per directory: `dv/arch/file` -> digests listed (more than one: duplicate).
    let mut sums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (dir, text) in &seen.sums {
        let (lines, bad) = parse_sums(text);
        for n in bad {
            p(
                &format!("{dir}/SHA256SUMS"),
                Kind::Malformed,
                format!("line {n} is not `<sha256>  <file>`"),
            );
        }
        for (h, f) in lines {
            sums.entry(format!("{dir}/{f}")).or_default().push(h);
        }
    }
    let mut index: BTreeMap<String, Vec<ProbeMeta>> = BTreeMap::new();
    match (&seen.index, index_entries(seen.index.as_deref())) {
        (_, Some(entries)) => {
            for e in entries {
                index
                    .entry(format!("{}/{}/{}", e.driver_version, e.arch, e.file))
                    .or_default()
                    .push(e);
            }
        }
        (Some(_), None) => p(
            "index.json",
            Kind::Malformed,
            "not a probeforge index (no `probes` of recorded probes)".into(),
        ),
        (None, None) if !seen.files.is_empty() => {
            p("index.json", Kind::Missing, "index.json is absent".into())
        }
        (None, None) => {}
    }

    // An alias is listed as one: its bytes are those of the probe it names.
    let mut aliases: BTreeMap<String, Vec<crate::publish::Alias>> = BTreeMap::new();
    for a in index_aliases(seen.index.as_deref()) {
        aliases
            .entry(format!("{}/{}/{}", a.driver_version, a.arch, a.file))
            .or_default()
            .push(a);
    }
    for (name, list) in &aliases {
        for a in list {
            let of = format!("{}/{}/{}", a.driver_version, a.arch, a.of);
            match index.get(&of).and_then(|v| v.first()) {
                None => p(
                    name,
                    Kind::Alias,
                    format!("alias of `{of}`, which index.json does not list"),
                ),
                Some(e) if e.sha256 != a.sha256 => p(
                    name,
                    Kind::Alias,
                    format!(
                        "alias of `{of}` says sha256 {}; that probe is sha256 {}",
                        a.sha256, e.sha256
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    let names: BTreeSet<&String> = seen
        .files
        .keys()
        .chain(sums.keys())
        .chain(index.keys())
        .chain(aliases.keys())
        .collect();
    for name in names {
        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
        let in_sums = sums.get(name.as_str());
        let in_index = index.get(name.as_str());
        for (what, n) in [
            ("SHA256SUMS", in_sums.map_or(0, Vec::len)),
            ("index.json", in_index.map_or(0, Vec::len)),
        ] {
            if n > 1 {
                p(name, Kind::Duplicate, format!("listed {n} times in {what}"));
            }
        }
        let in_aliases = aliases.get(name.as_str()).map_or(0, Vec::len);
        if in_index.is_some() && in_aliases > 0 {
            p(
                name,
                Kind::Duplicate,
                "listed in index.json both as a probe and as an alias".into(),
            );
        } else if in_aliases > 1 {
            p(
                name,
                Kind::Duplicate,
                format!("listed {in_aliases} times in index.json's aliases"),
            );
        }
        let sum = in_sums.and_then(|v| v.first());
        // What index.json says of it: a probe's record, or an alias's.
        let idx = in_index
            .and_then(|v| v.first())
            .map(|e| (e.sha256.as_str(), e.size))
            .or_else(|| {
                aliases
                    .get(name.as_str())
                    .and_then(|v| v.first())
                    .map(|a| (a.sha256.as_str(), a.size))
            });
        let Some((sha, size)) = seen.files.get(name.as_str()) else {
            let by: Vec<&str> = [("SHA256SUMS", sum.is_some()), ("index.json", idx.is_some())]
                .iter()
                .filter(|(_, b)| *b)
                .map(|(w, _)| *w)
                .collect();
            p(
                name,
                Kind::Missing,
                format!("listed in {}, but absent", by.join(" and ")),
            );
            continue;
        };
        match (sum, idx) {
            (None, None) => p(
                name,
                Kind::Unlisted,
                format!("sha256 {sha}: listed in neither SHA256SUMS nor index.json"),
            ),
            (None, Some(_)) => p(
                name,
                Kind::NotInSums,
                if seen.sums.contains_key(dir) {
                    "not in its directory's SHA256SUMS".into()
                } else {
                    "its directory has no SHA256SUMS".into()
                },
            ),
            (Some(_), None) => p(name, Kind::NotInIndex, "not in index.json".into()),
            (Some(_), Some(_)) => {}
        }
        let sum_ok = sum.is_none_or(|h| h == sha);
        let idx_ok = idx.is_none_or(|(h, _)| h == sha);
        match (sum, idx, sum_ok, idx_ok) {
            (_, _, true, true) => {}
            (Some(h), Some((e, _)), true, false) => p(
                name,
                Kind::StaleIndex,
                format!("index.json says sha256 {e}; the file and SHA256SUMS say {h}"),
            ),
            (Some(h), Some((e, _)), false, true) => p(
                name,
                Kind::StaleSums,
                format!("SHA256SUMS says sha256 {h}; the file and index.json say {e}"),
            ),
            _ => {
                let mut said = Vec::new();
                if let Some(h) = sum.filter(|_| !sum_ok) {
                    said.push(format!("SHA256SUMS says {h}"));
                }
                if let Some((e, _)) = idx.filter(|_| !idx_ok) {
                    said.push(format!("index.json says {e}"));
                }
                p(
                    name,
                    Kind::Digest,
                    format!("sha256 is {sha}; {}", said.join(", ")),
                );
            }
        }
        if let Some((_, want)) = idx.filter(|(_, want)| want != size) {
            p(
                name,
                Kind::Size,
                format!("{size} bytes; index.json says {want}"),
            );
        }
    }

    let mut signatures = BTreeMap::new();
    for (dir, text) in &seen.sums {
        let status = match (seen.sigs.get(dir), keyring) {
            (None, None) => "absent",
            (Some(_), None) => "unchecked",
            (None, Some(k)) => {
                p(
                    &format!("{dir}/SHA256SUMS"),
                    Kind::Signature,
                    format!(
                        "not signed: no {SIGNATURE_FILE} (trusted: {})",
                        k.describe()
                    ),
                );
                "absent"
            }
            (Some(sig), Some(k)) => {
                match crate::trust::verify_detached(
                    text,
                    sig,
                    k,
                    repo,
                    &format!("{dir}/SHA256SUMS"),
                ) {
                    Ok(()) => "valid",
                    Err(e) => {
                        p(
                            &format!("{dir}/{SIGNATURE_FILE}"),
                            Kind::Signature,
                            e.to_string(),
                        );
                        "bad"
                    }
                }
            }
        };
        signatures.insert(dir.clone(), status.to_owned());
    }
    problems.sort();
    problems.dedup();
    Ok(Report {
        repo: repo.to_owned(),
        probes: seen.files.len(),
        problems,
        signatures,
        note,
    })
}

/// Verifies the signature of every kernel module (`<dv>/<arch>/*.ko`) of a local repository
/// against `cert`, as the kernel would (`check --sign-cert`): an unsigned module, one signed by
/// another signer and one whose signature does not verify are each a [`Kind::Signature`]
/// problem. Returns how many modules were verified.
pub fn module_signatures(
    root: &Path,
    cert: &crate::kmod::sign::Cert,
    report: &mut Report,
) -> Result<usize> {
    let mut modules = Vec::new();
    for dv in std::fs::read_dir(root).map_err(io(root))?.flatten() {
        let Ok(arches) = std::fs::read_dir(dv.path()) else {
            continue;
        };
        for arch in arches.flatten() {
            let Ok(files) = std::fs::read_dir(arch.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.path().extension().is_some_and(|e| e == "ko") {
                    modules.push(f.path());
                }
            }
        }
    }
    modules.sort();
    for m in &modules {
        let bytes = std::fs::read(m).map_err(io(m))?;
        if let Err(e) = crate::kmod::sign::verify(&bytes, cert) {
            report.problems.push(Problem {
                path: m
                    .strip_prefix(root)
                    .unwrap_or(m)
                    .to_string_lossy()
                    .into_owned(),
                kind: Kind::Signature,
                detail: e.to_string(),
            });
        }
    }
    report.problems.sort();
    Ok(modules.len())
}

/// What `--repair` did about one probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Repair {
    pub path: String,
    /// `restored` (rebuilt to its recorded bytes), `reindexed` (the file matched its record;
    /// the indexes were rebuilt), `moved-aside` (no way to restore it; kept in `aside`),
    /// `not-rebuilt` (missing and could not be rebuilt).
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aside: Option<PathBuf>,
    pub detail: String,
}

/// What a rebuild needs besides the records: the toolchain to build with, and where to find
/// inputs the cache does not hold.
pub struct RepairEnv<'a> {
    pub lister: &'a crate::repo::Lister<'a>,
    pub toolchain: &'a crate::toolchain::Toolchain,
    /// A driver source to use when its digest is the recorded one.
    pub driver_source: Option<PathBuf>,
    pub jobs: usize,
    pub scratch: Option<PathBuf>,
}

/// Repairs a local repository after [`check`] found `report`'s problems: see the module
/// documentation. Returns what was done per probe; check again for the result.
pub fn repair(root: &Path, report: &Report, env: &RepairEnv) -> Result<Vec<Repair>> {
    let repo = LocalRepo::new(root);
    let index =
        index_entries(fs::read(root.join("index.json")).ok().as_deref()).unwrap_or_default();
    let mut out = Vec::new();
    let mut rebuild: Vec<(String, ProbeMeta)> = Vec::new();
    let probes: BTreeSet<&str> = report
        .problems
        .iter()
        .filter(|p| p.path.ends_with(".o"))
        .map(|p| p.path.as_str())
        .collect();
    for name in probes {
        let mut it = name.splitn(3, '/');
        let (Some(dv), Some(arch), Some(file)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let record = repo.record(dv, arch, file).or_else(|| {
            index
                .iter()
                .find(|e| e.driver_version == dv && e.arch == arch && e.file == file)
                .cloned()
        });
        let path = repo.probe_path(dv, arch, file);
        let bytes = fs::read(&path).ok();
        match (record, bytes) {
            (Some(r), Some(b)) if crate::base::sha256(&b) == r.sha256 => {
                // The file is what was published: only the indexes (or its metadata) are off.
                repo.publish(&r, &b)?;
                out.push(Repair {
                    path: name.to_owned(),
                    action: "reindexed".into(),
                    aside: None,
                    detail: "the file matches its record; indexes rebuilt from the records".into(),
                });
            }
            (Some(r), _) => rebuild.push((name.to_owned(), r)),
            (None, Some(_)) => {
                let aside = repo.move_aside(&path)?;
                out.push(Repair {
                    path: name.to_owned(),
                    action: "moved-aside".into(),
                    aside: Some(aside),
                    detail: "no record says what this file is: not published".into(),
                });
            }
            (None, None) => {}
        }
    }
    out.extend(rebuild_all(&repo, rebuild, env)?);
    repo.reindex()?;
    Ok(out)
}

/// Rebuilds recorded probes in a staging repository (through the farm, as `build-all` does),
/// then publishes each one whose bytes are the recorded ones.
fn rebuild_all(
    repo: &LocalRepo,
    todo: Vec<(String, ProbeMeta)>,
    env: &RepairEnv,
) -> Result<Vec<Repair>> {
    let mut out = Vec::new();
    let failed = |name: &str, why: String, out: &mut Vec<Repair>| -> Result<()> {
        let path = repo.root.join(name);
        let aside = if path.is_file() {
            Some(repo.move_aside(&path)?)
        } else {
            None
        };
        out.push(Repair {
            path: name.to_owned(),
            action: if aside.is_some() {
                "moved-aside"
            } else {
                "not-rebuilt"
            }
            .into(),
            aside,
            detail: format!("cannot rebuild it: {why}"),
        });
        Ok(())
    };
    // One farm per driver source (and version), as one build-all run.
    let mut groups: BTreeMap<(String, String), Vec<(String, ProbeMeta)>> = BTreeMap::new();
    for (name, r) in todo {
        if r.toolchain != env.toolchain.identity() {
            let why = format!(
                "it was built with `{}`, this toolchain is `{}`",
                r.toolchain,
                env.toolchain.identity()
            );
            failed(&name, why, &mut out)?;
            continue;
        }
        groups
            .entry((r.driver_version.clone(), r.driver_source_sha256.clone()))
            .or_default()
            .push((name, r));
    }
    let scratch = env
        .scratch
        .clone()
        .unwrap_or_else(crate::pipeline::default_scratch);
    for ((dv, driver_sha), list) in groups {
        let source = match find_driver(env, &driver_sha) {
            Ok(s) => s,
            Err(why) => {
                for (name, _) in &list {
                    failed(name, why.clone(), &mut out)?;
                }
                continue;
            }
        };
        let batch = tempfile::Builder::new()
            .prefix("probeforge-repair-")
            .tempdir_in(&scratch)
            .map_err(io(&scratch))?;
        let (driver_dir, digest) = match crate::farm::prepare_driver_source(&source, batch.path()) {
            Ok(x) => x,
            Err(e) => {
                for (name, _) in &list {
                    failed(name, format!("driver source: {e}"), &mut out)?;
                }
                continue;
            }
        };
        let mut kernels = Vec::new();
        let mut wanted = Vec::new();
        for (name, r) in list {
            match kernel_of(env, &r) {
                Ok(k) => {
                    kernels.push(k);
                    wanted.push((name, r));
                }
                Err(why) => failed(&name, why, &mut out)?,
            }
        }
        let staging = LocalRepo::new(&batch.path().join("staging"));
        let staging_repo = crate::publish::Repo::Local(staging.clone());
        let farm = crate::farm::Farm {
            lister: env.lister,
            repo: &staging_repo,
            publish_to: &staging,
            driver_dir,
            driver_version: dv.clone(),
            driver_digest: digest,
            toolchain: env.toolchain,
            patches: &crate::patch::Catalog::embedded(),
            drivers: vec![crate::pipeline::Driver::Ebpf],
            module_source: None,
            kbuild_jobs: 1,
            compilers: &crate::kmod::resolve::IndexCompilers::new(*env.lister, false),
            jobs: env.jobs,
            scratch: env.scratch.clone(),
            cache_dir: env.lister.client.config().cache_dir.clone(),
            verify: None,
            select: None,
            module_signer: None,
        };
        let results = farm.run(kernels, &crate::farm::NoReport);
        for (name, r) in wanted {
            let res = results
                .iter()
                .find(|x| x.file == r.file && x.arch.uname_m() == r.arch);
            let staged = staging.probe_path(&r.driver_version, &r.arch, &r.file);
            let bytes = match (res.and_then(|x| x.error.clone()), fs::read(&staged)) {
                (None, Ok(b)) => b,
                (Some(e), _) => {
                    failed(&name, e, &mut out)?;
                    continue;
                }
                (None, Err(e)) => {
                    failed(&name, format!("no probe came out: {e}"), &mut out)?;
                    continue;
                }
            };
            let sha = crate::base::sha256(&bytes);
            if sha != r.sha256 {
                let why = format!(
                    "the rebuild made sha256 {sha}, not the recorded {} (not published)",
                    r.sha256
                );
                failed(&name, why, &mut out)?;
                continue;
            }
            let path = repo.root.join(&name);
            let damaged = fs::read(&path).ok().map(|b| crate::base::sha256(&b));
            repo.publish(&r, &bytes)?;
            out.push(Repair {
                path: name,
                action: "restored".into(),
                aside: damaged.map(|d| crate::publish::aside_path(&repo.root, &staged_rel(&r), &d)),
                detail: format!("rebuilt from its recorded inputs: sha256 {sha}, as recorded"),
            });
        }
    }
    Ok(out)
}

fn staged_rel(r: &ProbeMeta) -> PathBuf {
    Path::new(&r.driver_version).join(&r.arch).join(&r.file)
}

/// The driver source with the recorded digest: the one given, the cache's, or a known copy.
fn find_driver(env: &RepairEnv, sha: &str) -> Result<PathBuf, String> {
    if let Some(p) = &env.driver_source {
        match crate::base::digest_input(p) {
            Ok(d) if d == sha => return Ok(p.clone()),
            Ok(d) => tracing::info!("--driver-source has sha256 {d}, the record says {sha}"),
            Err(e) => return Err(format!("`{}`: {e}", p.display())),
        }
    }
    let client = env.lister.client;
    if let Some(p) = client.cached(sha) {
        return Ok(p);
    }
    let cat = crate::driver::SourceCatalog::embedded();
    if let Some(version) = cat.version_of_digest(sha) {
        let p = crate::driver::fetch_source(
            client,
            &cat,
            env.lister.mirrors,
            env.lister.catalog,
            &version,
            None,
        )
        .map_err(|e| e.to_string())?;
        if crate::base::digest_input(&p).is_ok_and(|d| d == sha) {
            return Ok(p);
        }
    }
    Err(format!(
        "the driver source with sha256 {sha} is neither in the cache nor a known copy (pass --driver-source)"
    ))
}

/// The kernel of a record, its packages found by digest: in the cache, else in the listing of
/// a catalog target with its target id.
fn kernel_of(env: &RepairEnv, r: &ProbeMeta) -> Result<crate::repo::KernelRecord, String> {
    use crate::repo::{KernelRecord, PackageRef};
    let arch = crate::kernel::Arch::parse(&r.arch).ok_or_else(|| format!("arch `{}`", r.arch))?;
    let client = env.lister.client;
    let cached: Option<Vec<PackageRef>> = r
        .inputs
        .iter()
        .map(|(name, sha)| {
            let p = client.cached(sha)?;
            Some(PackageRef {
                name: name.clone(),
                version: String::new(),
                // Never fetched: the intact cache entry is served by its digest.
                url: format!("cache:sha256/{sha}"),
                size: fs::metadata(&p).ok()?.len(),
                sha256: sha.clone(),
            })
        })
        .collect();
    let base = KernelRecord {
        target: String::new(),
        target_id: r.target_id.clone(),
        release: r.kernel_release.clone(),
        kernel_version: r.kernel_version.clone(),
        arch,
        origin: "recorded".into(),
        packages: Vec::new(),
        unsigned_metadata: r.unsigned_metadata,
    };
    if let Some(mut packages) = cached.filter(|p| !p.is_empty()) {
        // The recorded file name states what the listing would (Debian: the package version
        // in `<version>-<flavour>`), so the kernel is named as it was.
        let headers = format!("linux-headers-{}", r.kernel_release);
        let named = r
            .file
            .strip_prefix(&format!("falco_{}_", r.target_id))
            .and_then(|f| f.rsplit_once('_'))
            .map(|(release, _)| release);
        let flavour = crate::loader::debian_file_release(&r.kernel_release, "");
        if let (Some(named), Some(flavour)) = (named, flavour) {
            for p in packages.iter_mut().filter(|p| p.name == headers) {
                if let Some(v) = named.strip_suffix(flavour.as_str()) {
                    p.version = v.to_owned();
                }
            }
        }
        return Ok(KernelRecord { packages, ..base });
    }
    let mut tried = Vec::new();
    for t in &env.lister.catalog.targets {
        let id_fits =
            r.target_id == t.target_id || r.target_id.starts_with(&format!("{}-", t.target_id));
        if !id_fits
            || !t
                .arches
                .iter()
                .any(|a| crate::kernel::Arch::parse(a) == Some(arch))
        {
            continue;
        }
        let listed = match env.lister.list(&t.name, &[arch]) {
            Ok(l) => l,
            Err(e) => {
                tried.push(format!("{}: {e}", t.name));
                continue;
            }
        };
        for k in listed.iter().filter(|k| k.release == r.kernel_release) {
            let packages: Option<Vec<PackageRef>> = r
                .inputs
                .iter()
                .map(|(name, sha)| {
                    k.packages
                        .iter()
                        .find(|p| p.name == *name && p.sha256 == *sha)
                        .cloned()
                })
                .collect();
            if let Some(packages) = packages {
                return Ok(KernelRecord {
                    target: k.target.clone(),
                    packages,
                    ..base
                });
            }
        }
        tried.push(format!("{}: not these packages", t.name));
    }
    Err(format!(
        "its header packages ({}) are neither in the cache nor listed by a target with target id `{}`{}",
        r.inputs
            .iter()
            .map(|(n, s)| format!("{n} sha256 {}", &s[..s.len().min(12)]))
            .collect::<Vec<_>>()
            .join(", "),
        r.target_id,
        if tried.is_empty() {
            String::new()
        } else {
            format!(" (tried {})", tried.join("; "))
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_in_both_sha256sum_modes_and_malformed_ones() {
        let h = "a".repeat(64);
        let text = format!(
            "{h}  one.o\n{h} *two.o\n\nnot a line\n{}  short.o\n",
            "b".repeat(63)
        );
        let (ok, bad) = parse_sums(text.as_bytes());
        assert_eq!(
            ok,
            [(h.clone(), "one.o".to_owned()), (h, "two.o".to_owned())]
        );
        assert_eq!(bad, [4, 5]);
    }

    /// A repository published by [`LocalRepo`] (two probes in one directory), for each test
    /// to damage one way. The bytes are the repository's business, not the check's: any will do.
    struct Fixture {
        dir: tempfile::TempDir,
        files: Vec<(String, String, Vec<u8>)>,
    }

    const DIR: &str = "8.0.0+driver/x86_64";

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let repo = LocalRepo::new(dir.path());
            let mut files = Vec::new();
            for (release, bytes) in [
                ("6.1.0-98-amd64", b"probe one".to_vec()),
                ("6.1.0-99-amd64", b"probe two, longer".to_vec()),
            ] {
                let file = format!("falco_debian_{release}_1.o");
                let sha = crate::base::sha256(&bytes);
                let meta = ProbeMeta {
                    driver_version: "8.0.0+driver".into(),
                    arch: "x86_64".into(),
                    target_id: "debian".into(),
                    kernel_release: release.into(),
                    kernel_version: "1".into(),
                    file: file.clone(),
                    size: bytes.len() as u64,
                    sha256: sha.clone(),
                    inputs: Vec::new(),
                    driver_source_sha256: "d".repeat(64),
                    patches: Vec::new(),
                    toolchain: "clang 14 / llc 14".into(),
                    flags_sha256: "f".repeat(64),
                    built_at: "2026-12-06T00:00:00Z".into(),
                    unsigned_metadata: false,
                    verified: None,
                    signed_by: None,
                };
                repo.publish(&meta, &bytes).unwrap();
                files.push((format!("{DIR}/{file}"), sha, bytes));
            }
            Fixture { dir, files }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        fn problems(&self, keyring: Option<&Keyring>) -> Vec<(Kind, String, String)> {
            let r = check(self.dir.path().to_str().unwrap(), None, keyring).unwrap();
            assert_eq!(r.probes, 2);
            r.problems
                .into_iter()
                .map(|p| (p.kind, p.path, p.detail))
                .collect()
        }
        fn edit_index(&self, f: impl FnOnce(&mut Vec<serde_json::Value>)) {
            let p = self.path("index.json");
            let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            f(v["probes"].as_array_mut().unwrap());
            fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        }
        fn edit_sums(&self, f: impl FnOnce(String) -> String) {
            let p = self.path(&format!("{DIR}/SHA256SUMS"));
            fs::write(&p, f(fs::read_to_string(&p).unwrap())).unwrap();
        }
    }

    #[test]
    fn a_published_repository_has_no_problems() {
        let f = Fixture::new();
        assert_eq!(f.problems(None), []);
    }

    #[test]
    fn a_size_other_than_index_json_says_is_named() {
        let f = Fixture::new();
        f.edit_index(|probes| probes[1]["size"] = 18.into());
        let (name, _, bytes) = &f.files[1];
        assert_eq!(bytes.len(), 17);
        assert_eq!(
            f.problems(None),
            [(
                Kind::Size,
                name.clone(),
                "17 bytes; index.json says 18".into()
            )]
        );
    }

    #[test]
    fn stale_sums_are_named_when_file_and_index_agree() {
        let f = Fixture::new();
        let (name, sha, _) = &f.files[0];
        let zero = "0".repeat(64);
        f.edit_sums(|s| s.replace(sha.as_str(), &zero));
        assert_eq!(
            f.problems(None),
            [(
                Kind::StaleSums,
                name.clone(),
                format!("SHA256SUMS says sha256 {zero}; the file and index.json say {sha}")
            )]
        );
    }

    #[test]
    fn an_absent_probe_is_missing_and_a_stray_one_unlisted() {
        let f = Fixture::new();
        let (name, _, _) = &f.files[0];
        fs::remove_file(f.path(name)).unwrap();
        let r = check(f.dir.path().to_str().unwrap(), None, None).unwrap();
        assert_eq!(r.probes, 1);
        let got: Vec<_> = r
            .problems
            .into_iter()
            .map(|p| (p.kind, p.path, p.detail))
            .collect();
        assert_eq!(
            got,
            [(
                Kind::Missing,
                name.clone(),
                "listed in SHA256SUMS and index.json, but absent".to_owned()
            )]
        );
        let f = Fixture::new();
        let stray = format!("{DIR}/falco_debian_9.9.9-stray_1.o");
        fs::write(f.path(&stray), b"stray").unwrap();
        let r = check(f.dir.path().to_str().unwrap(), None, None).unwrap();
        let got: Vec<_> = r
            .problems
            .into_iter()
            .map(|p| (p.kind, p.path, p.detail))
            .collect();
        let sha = crate::base::sha256(b"stray");
        assert_eq!(
            got,
            [(
                Kind::Unlisted,
                stray,
                format!("sha256 {sha}: listed in neither SHA256SUMS nor index.json")
            )]
        );
    }

    #[test]
    fn a_stale_index_json_is_named_when_file_and_sums_agree() {
        let f = Fixture::new();
        let (name, sha, _) = &f.files[1];
        let zero = "0".repeat(64);
        f.edit_index(|probes| probes[1]["sha256"] = zero.clone().into());
        assert_eq!(
            f.problems(None),
            [(
                Kind::StaleIndex,
                name.clone(),
                format!("index.json says sha256 {zero}; the file and SHA256SUMS say {sha}")
            )]
        );
    }

    #[test]
    fn a_file_listed_twice_is_a_duplicate_in_either_index() {
        let f = Fixture::new();
        let (name, _, _) = &f.files[0];
        f.edit_sums(|s| {
            let first = s.lines().next().unwrap().to_owned();
            format!("{s}{first}\n")
        });
        assert_eq!(
            f.problems(None),
            [(
                Kind::Duplicate,
                name.clone(),
                "listed 2 times in SHA256SUMS".into()
            )]
        );
        let f = Fixture::new();
        f.edit_index(|probes| {
            let first = probes[0].clone();
            probes.push(first);
        });
        assert_eq!(
            f.problems(None),
            [(
                Kind::Duplicate,
                name.clone(),
                "listed 2 times in index.json".into()
            )]
        );
    }

    #[test]
    fn a_file_in_index_json_only_is_not_in_sums() {
        let f = Fixture::new();
        let (name, sha, _) = &f.files[0];
        f.edit_sums(|s| {
            s.lines()
                .filter(|l| !l.starts_with(sha.as_str()))
                .map(|l| format!("{l}\n"))
                .collect()
        });
        assert_eq!(
            f.problems(None),
            [(
                Kind::NotInSums,
                name.clone(),
                "not in its directory's SHA256SUMS".into()
            )]
        );
        fs::remove_file(f.path(&format!("{DIR}/SHA256SUMS"))).unwrap();
        let want: Vec<_> = f
            .files
            .iter()
            .map(|(n, _, _)| {
                (
                    Kind::NotInSums,
                    n.clone(),
                    "its directory has no SHA256SUMS".to_owned(),
                )
            })
            .collect();
        assert_eq!(f.problems(None), want);
    }

    #[test]
    fn malformed_sums_lines_and_index_are_named() {
        let f = Fixture::new();
        f.edit_sums(|s| format!("{s}not a sums line\n"));
        assert_eq!(
            f.problems(None),
            [(
                Kind::Malformed,
                format!("{DIR}/SHA256SUMS"),
                "line 3 is not `<sha256>  <file>`".into()
            )]
        );
        let f = Fixture::new();
        fs::write(f.path("index.json"), b"{\"probes\": 3}").unwrap();
        let mut want = vec![(
            Kind::Malformed,
            "index.json".to_owned(),
            "not a probeforge index (no `probes` of recorded probes)".to_owned(),
        )];
        want.extend(
            f.files
                .iter()
                .map(|(n, _, _)| (Kind::NotInIndex, n.clone(), "not in index.json".to_owned())),
        );
        // Problems come sorted by path.
        want.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
        assert_eq!(f.problems(None), want);
    }

    #[test]
    fn an_absent_index_json_is_missing() {
        let f = Fixture::new();
        fs::remove_file(f.path("index.json")).unwrap();
        let mut want = vec![(
            Kind::Missing,
            "index.json".to_owned(),
            "index.json is absent".to_owned(),
        )];
        want.extend(
            f.files
                .iter()
                .map(|(n, _, _)| (Kind::NotInIndex, n.clone(), "not in index.json".to_owned())),
        );
        // Problems come sorted by path.
        want.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
        assert_eq!(f.problems(None), want);
    }

    #[test]
    fn other_bytes_than_both_indexes_say_are_a_digest_problem() {
        let f = Fixture::new();
        let (name, sha, bytes) = &f.files[0];
        let mut other = bytes.clone();
        other[0] ^= 1;
        fs::write(f.path(name), &other).unwrap();
        let now = crate::base::sha256(&other);
        assert_eq!(
            f.problems(None),
            [(
                Kind::Digest,
                name.clone(),
                format!("sha256 is {now}; SHA256SUMS says {sha}, index.json says {sha}")
            )]
        );
    }

    #[test]
    fn unsigned_or_badly_signed_sums_are_named_when_a_keyring_is_given() {
        let f = Fixture::new();
        let k = Keyring::embedded("archlinux.gpg").unwrap();
        let p = f.problems(Some(&k));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].0, p[0].1.as_str()),
            (Kind::Signature, format!("{DIR}/SHA256SUMS").as_str())
        );
        assert!(
            p[0].2
                .starts_with("not signed: no SHA256SUMS.asc (trusted: "),
            "{p:?}"
        );
        fs::write(
            f.path(&format!("{DIR}/{SIGNATURE_FILE}")),
            b"not a signature",
        )
        .unwrap();
        let p = f.problems(Some(&k));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].0, p[0].1.as_str()),
            (Kind::Signature, format!("{DIR}/{SIGNATURE_FILE}").as_str())
        );
        // Without a keyring the signature is not looked at.
        assert_eq!(f.problems(None), []);
    }

    /// Issue 31 item 5: the name Falco's loader asks for on a Debian backport is a real file
    /// with the backport's bytes, listed as an alias; `check` accepts it, and names an alias
    /// whose bytes or record are not its probe's.
    #[test]
    fn an_alias_with_its_probes_bytes_is_accepted_and_one_without_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepo::new(dir.path());
        let bytes = b"backport probe".to_vec();
        let meta: ProbeMeta = serde_json::from_value(serde_json::json!({
            "driver_version": "9.1.0+driver", "arch": "x86_64", "target_id": "debian",
            "kernel_release": "7.3.4+deb13-amd64", "kernel_version": "1",
            "file": "falco_debian_7.3.4-1~bpo13+1-amd64_1.o", "size": bytes.len(),
            "sha256": crate::base::sha256(&bytes), "inputs": [], "driver_source_sha256": "",
            "patches": [], "toolchain": "", "flags_sha256": "",
            "built_at": "2026-12-06T00:00:00Z",
        }))
        .unwrap();
        repo.publish(&meta, &bytes).unwrap();
        let root = dir.path().to_str().unwrap();
        let problems = || -> Vec<(Kind, String, String)> {
            check(root, None, None)
                .unwrap()
                .problems
                .into_iter()
                .map(|p| (p.kind, p.path, p.detail))
                .collect()
        };
        let alias = "9.1.0+driver/x86_64/falco_debian_7.3.4-1-amd64_1.o";
        assert!(dir.path().join(alias).is_file());
        assert_eq!(check(root, None, None).unwrap().probes, 2);
        assert_eq!(problems(), []);

        // Other bytes under the alias's name: SHA256SUMS and index.json both disagree.
        fs::write(dir.path().join(alias), b"other probe!!!").unwrap();
        let got = problems();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (Kind::Digest, alias));

        // An alias whose record names other bytes than its probe's.
        repo.reindex().unwrap();
        assert_eq!(problems(), []);
        let p = dir.path().join("index.json");
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        v["aliases"][0]["of"] = "falco_debian_7.3.4-1~bpo13+2-amd64_1.o".into();
        fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        assert_eq!(
            problems(),
            [(
                Kind::Alias,
                alias.to_owned(),
                "alias of `9.1.0+driver/x86_64/falco_debian_7.3.4-1~bpo13+2-amd64_1.o`, which index.json does not list".into()
            )]
        );
    }
}

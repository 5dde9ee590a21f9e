//! The repository Falco's loaders download from:
//! `<driver-version>/<x86_64|aarch64>/falco_<target-id>_<kernel-release>_<kernel-version>.o`,
//! with a `SHA256SUMS` per directory, and `index.json` and `INDEX.md` at the top.
//!
//! Published probes are immutable: the same name with other bytes is a conflict, never a
//! replacement. Every write is temp + rename; each probe's metadata lands (in
//! `.probeforge/meta/`) before the probe, and the indexes are rebuilt from them last, so a run
//! killed at any point leaves a consistent repository that the next run completes.
//!
//! The one exception to "never replaced" is a file damaged on disk: when a build reproduces
//! exactly the bytes its metadata recorded, the damaged file is moved aside (to
//! `.probeforge/aside/`, never deleted) and the recorded bytes take its place. With a signing
//! key, every `SHA256SUMS` gets a detached signature `SHA256SUMS.asc` whenever it changes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::base::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("conflict: `{path}` is already published with sha256 {existing}; this build made {new} (published probes are never replaced)")]
    Conflict {
        path: PathBuf,
        existing: String,
        new: String,
    },
    #[error("repository `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HEAD {url}: {what}")]
    Remote { url: String, what: String },
    #[error(transparent)]
    Sign(#[from] crate::trust::Error),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Everything recorded about one published probe.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeMeta {
    pub driver_version: String,
    pub arch: String,
    pub target_id: String,
    pub kernel_release: String,
    pub kernel_version: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// Header packages: (name, sha256).
    pub inputs: Vec<(String, String)>,
    pub driver_source_sha256: String,
    pub patches: Vec<String>,
    pub toolchain: String,
    pub flags_sha256: String,
    /// RFC 3339 UTC; `SOURCE_DATE_EPOCH` when set.
    pub built_at: String,
    /// The kernel's packages were listed from metadata no trusted key signed
    /// (`--allow-unsigned`, a kernel-crawler list, a bucket listing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned_metadata: bool,
    /// The VM's verdict when `--verify` proved the driver in its kernel before publishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// Who signed the module (`build-all --module-sign-key/--module-sign-cert`): the hash and
    /// the certificate's subject, issuer, serial and key id; never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<crate::kmod::sign::Signed>,
}

/// A kernel whose driver failed to build (or to prove itself), as the repository keeps it
/// until a later run publishes that driver: the gaps a repository knows of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailureRecord {
    pub driver_version: String,
    pub arch: String,
    /// `ebpf` or `kmod`.
    pub driver: String,
    pub target_id: String,
    pub kernel_release: String,
    pub kernel_version: String,
    /// The file Falco's loaders would download.
    pub file: String,
    /// The error's first line.
    pub reason: String,
    /// The whole error (kbuild's or the compiler's last lines, the VM's verdict).
    pub log: String,
    /// The kernel's packages: (name, sha256 where the index gave one).
    pub inputs: Vec<(String, String)>,
    /// RFC 3339 UTC; `SOURCE_DATE_EPOCH` when set.
    pub at: String,
}

/// When a published file's kernel first appeared in a signed index (as `watch` saw it), when
/// the file was published, and when it was proven in its kernel: the time to driver. Kept
/// beside the probe's record (`.probeforge/times/`), never in it and never in the file, so the
/// built bytes and their records stay reproducible; `index.json` carries them per probe, each
/// omitted when unknown. RFC 3339 UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
}

impl Stamps {
    fn is_empty(&self) -> bool {
        *self == Stamps::default()
    }
}

/// The earlier of two RFC 3339 UTC stamps of the same shape (they sort as text).
fn earliest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Falco's loaders escape the driver version and the file name as URL path segments.
pub fn url_path(driver_version: &str, arch: &str, file: &str) -> String {
    format!(
        "{}/{}/{}",
        crate::base::escape_segment(driver_version),
        arch,
        crate::base::escape_segment(file)
    )
}

/// What publishing one probe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Published {
    New,
    /// Already there with the same bytes.
    Unchanged,
    /// The file there was damaged (not the bytes its metadata records): moved aside, and the
    /// recorded bytes, which this build reproduced, put in its place.
    Restored,
}

/// The detached signature written beside each `SHA256SUMS`.
pub const SIGNATURE_FILE: &str = "SHA256SUMS.asc";

/// Where a file that does not match its record is moved: `.probeforge/aside/<relative
/// path>@<its sha256>` (not a `.o` name, so nothing takes it for a probe).
pub fn aside_path(root: &Path, rel: &Path, found_sha256: &str) -> PathBuf {
    let mut name = rel.as_os_str().to_owned();
    name.push(format!("@{found_sha256}"));
    root.join(".probeforge/aside").join(name)
}

/// The sizes `index.json` records, for `build-all`'s fast path: a probe whose file has another
/// size is damaged, not published.
#[derive(Debug, Default)]
pub struct IndexedSizes {
    root: PathBuf,
    sizes: BTreeMap<(String, String, String), u64>,
}

impl IndexedSizes {
    /// Why the probe on disk does not count as published (its size is not what index.json
    /// says), or `None`. A probe index.json does not list is not judged here.
    pub fn differs(&self, driver_version: &str, arch: &str, file: &str) -> Option<String> {
        let want =
            *self
                .sizes
                .get(&(driver_version.to_owned(), arch.to_owned(), file.to_owned()))?;
        let path = self.root.join(driver_version).join(arch).join(file);
        let found = fs::metadata(&path).ok()?.len();
        (found != want).then(|| {
            format!(
                "`{}` is {found} bytes, index.json says {want}: damaged, not counted as published",
                path.display()
            )
        })
    }
}

/// A second name of a published file: the name Falco's loader asks for on a Debian backport or
/// rebuild (`falco_debian_7.3.4-1-amd64_1.o` for `7.3.4-1~bpo13+1`, see
/// [`crate::loader::debian_alias`]), written as a real file with the same bytes (the loader
/// downloads a URL: it follows no index) and listed in `SHA256SUMS` and index.json's `aliases`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alias {
    pub driver_version: String,
    pub arch: String,
    pub file: String,
    /// The published file whose bytes it carries.
    pub of: String,
    pub sha256: String,
    pub size: u64,
}

/// An alias the loader would ask for but that is not written, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AliasRefused {
    pub driver_version: String,
    pub arch: String,
    pub file: String,
    /// The published files it would have been an alias of.
    pub of: Vec<String>,
    pub reason: String,
}

/// The aliases published probes call for (pure): one per Debian backport whose loader name no
/// other kernel claims. A name a kernel's own file has (published, or kept as a failure) stays
/// that kernel's: the native kernel wins. A name two backports would share is ambiguous: neither
/// gets it.
pub fn aliases(
    entries: &[ProbeMeta],
    failures: &[FailureRecord],
) -> (Vec<Alias>, Vec<AliasRefused>) {
    let own: std::collections::BTreeSet<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e.driver_version.as_str(), e.arch.as_str(), e.file.as_str()))
        .collect();
    let failed: std::collections::BTreeSet<(&str, &str, &str)> = failures
        .iter()
        .map(|f| (f.driver_version.as_str(), f.arch.as_str(), f.file.as_str()))
        .collect();
    let mut wanted: BTreeMap<(String, String, String), Vec<&ProbeMeta>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.target_id == "debian") {
        // The release in the file's name (Debian: package version and flavour; the record's
        // `kernel_release` is `uname -r`).
        let Some(named) = e
            .file
            .strip_suffix(".ko")
            .or_else(|| e.file.strip_suffix(".o"))
            .and_then(|stem| stem.split_once(&format!("_{}_", e.target_id)))
            .and_then(|(_, rest)| rest.strip_suffix(&format!("_{}", e.kernel_version)))
        else {
            continue;
        };
        let Some(asked) = crate::loader::debian_alias(named) else {
            continue;
        };
        let file = e
            .file
            .replacen(&format!("_{named}_"), &format!("_{asked}_"), 1);
        if file != e.file {
            wanted
                .entry((e.driver_version.clone(), e.arch.clone(), file))
                .or_default()
                .push(e);
        }
    }
    let (mut made, mut refused) = (Vec::new(), Vec::new());
    for ((dv, arch, file), of) in wanted {
        let key = (dv.as_str(), arch.as_str(), file.as_str());
        let reason = if own.contains(&key) {
            Some(format!(
                "`{file}` is its own kernel's published file (the native kernel wins)"
            ))
        } else if failed.contains(&key) {
            Some(format!(
                "`{file}` is its own kernel's file (its build failed; the native kernel wins)"
            ))
        } else if of.len() > 1 {
            Some(format!(
                "ambiguous: the loader asks for `{file}` on {} kernels",
                of.len()
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => refused.push(AliasRefused {
                of: of.iter().map(|e| e.file.clone()).collect(),
                driver_version: dv,
                arch,
                file,
                reason,
            }),
            None => made.push(Alias {
                of: of[0].file.clone(),
                sha256: of[0].sha256.clone(),
                size: of[0].size,
                driver_version: dv,
                arch,
                file,
            }),
        }
    }
    (made, refused)
}

/// What `.probeforge/aliases.json` keeps of the last reindex.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AliasState {
    aliases: Vec<Alias>,
    refused: Vec<AliasRefused>,
}

/// A repository in a local directory (servable as-is by any static web server).
#[derive(Debug, Clone)]
pub struct LocalRepo {
    pub root: PathBuf,
    /// Serializes index rewrites of the parallel workers of one run, so that the last one
    /// written has seen every probe published before it.
    index_lock: std::sync::Arc<std::sync::Mutex<()>>,
    /// Signs each `SHA256SUMS` it writes (`build-all --sign-key`).
    signer: Option<std::sync::Arc<crate::trust::SigningKey>>,
}

impl LocalRepo {
    pub fn new(root: &Path) -> LocalRepo {
        LocalRepo {
            root: root.to_owned(),
            index_lock: Default::default(),
            signer: None,
        }
    }

    /// The same repository, signing every `SHA256SUMS` it writes with `key`.
    pub fn with_signer(mut self, key: crate::trust::SigningKey) -> LocalRepo {
        self.signer = Some(std::sync::Arc::new(key));
        self
    }

    /// What index.json records of each probe's size (empty without a readable index).
    pub fn indexed_sizes(&self) -> IndexedSizes {
        let mut sizes = BTreeMap::new();
        let index = fs::read(self.root.join("index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        for p in index
            .as_ref()
            .and_then(|v| v["probes"].as_array())
            .into_iter()
            .flatten()
        {
            if let (Some(dv), Some(arch), Some(file), Some(size)) = (
                p["driver_version"].as_str(),
                p["arch"].as_str(),
                p["file"].as_str(),
                p["size"].as_u64(),
            ) {
                sizes.insert((dv.to_owned(), arch.to_owned(), file.to_owned()), size);
            }
        }
        IndexedSizes {
            root: self.root.clone(),
            sizes,
        }
    }

    /// The recorded metadata of a probe, whether or not its file is there.
    pub fn record(&self, driver_version: &str, arch: &str, file: &str) -> Option<ProbeMeta> {
        let mp = self.meta_path(driver_version, arch, file);
        serde_json::from_slice(&fs::read(mp).ok()?).ok()
    }

    /// Moves a file that does not match its record aside (see [`aside_path`]); returns where.
    pub fn move_aside(&self, path: &Path) -> Result<PathBuf> {
        let bytes = fs::read(path).map_err(io(path))?;
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let aside = aside_path(&self.root, rel, &crate::base::sha256(&bytes));
        let dir = aside.parent().expect("has a parent");
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::rename(path, &aside).map_err(io(path))?;
        Ok(aside)
    }

    pub fn probe_path(&self, driver_version: &str, arch: &str, file: &str) -> PathBuf {
        self.root.join(driver_version).join(arch).join(file)
    }

    fn meta_path(&self, driver_version: &str, arch: &str, file: &str) -> PathBuf {
        self.root
            .join(".probeforge/meta")
            .join(driver_version)
            .join(arch)
            .join(format!("{file}.json"))
    }

    fn times_path(&self, driver_version: &str, arch: &str, file: &str) -> PathBuf {
        self.root
            .join(".probeforge/times")
            .join(driver_version)
            .join(arch)
            .join(format!("{file}.json"))
    }

    /// The time stamps recorded for a published file (empty when none are).
    pub fn stamps(&self, driver_version: &str, arch: &str, file: &str) -> Stamps {
        fs::read(self.times_path(driver_version, arch, file))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds stamps to a file's record: `first_seen` keeps the earliest ever given, the others
    /// are set only where unknown (a file is published once). Call [`LocalRepo::reindex`] to
    /// carry them into `index.json`.
    pub fn stamp(&self, driver_version: &str, arch: &str, file: &str, add: &Stamps) -> Result<()> {
        let old = self.stamps(driver_version, arch, file);
        let new = Stamps {
            first_seen: earliest(old.first_seen.clone(), add.first_seen.clone()),
            published: old.published.clone().or_else(|| add.published.clone()),
            verified_at: old.verified_at.clone().or_else(|| add.verified_at.clone()),
        };
        if new == old {
            return Ok(());
        }
        let p = self.times_path(driver_version, arch, file);
        let json = serde_json::to_vec_pretty(&new).expect("serializable");
        write_atomic(&p, &json).map_err(io(&p))
    }

    fn failure_path(&self, driver_version: &str, arch: &str, file: &str) -> PathBuf {
        self.root
            .join(".probeforge/failures")
            .join(driver_version)
            .join(arch)
            .join(format!("{file}.json"))
    }

    /// Keeps a failure (replacing an older one of the same file) and reindexes.
    pub fn record_failure(&self, f: &FailureRecord) -> Result<()> {
        let p = self.failure_path(&f.driver_version, &f.arch, &f.file);
        let json = serde_json::to_vec_pretty(f).expect("serializable");
        write_atomic(&p, &json).map_err(io(&p))?;
        self.reindex().map(|_| ())
    }

    /// Every kept failure whose file is still not published.
    pub fn failures(&self) -> Result<Vec<FailureRecord>> {
        let base = self.root.join(".probeforge/failures");
        let mut out = Vec::new();
        for p in walk_json(&base)? {
            let Ok(f) = serde_json::from_slice::<FailureRecord>(&fs::read(&p).map_err(io(&p))?)
            else {
                continue;
            };
            if !self.exists(&f.driver_version, &f.arch, &f.file) {
                out.push(f);
            }
        }
        out.sort_by(|a, b| {
            (&a.driver_version, &a.arch, &a.file).cmp(&(&b.driver_version, &b.arch, &b.file))
        });
        Ok(out)
    }

    /// Whether a probe of its own is published under this name (an alias is not: the kernel
    /// the name is its own still has to be built).
    pub fn exists(&self, driver_version: &str, arch: &str, file: &str) -> bool {
        self.probe_path(driver_version, arch, file).is_file()
            && !self.is_alias(driver_version, arch, file)
    }

    fn alias_state(&self) -> AliasState {
        fs::read(self.root.join(".probeforge/aliases.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether the file under this name is an alias written by [`LocalRepo::reindex`] (no
    /// probe of its own was published under it).
    pub fn is_alias(&self, driver_version: &str, arch: &str, file: &str) -> bool {
        !self.meta_path(driver_version, arch, file).is_file()
            && self
                .alias_state()
                .aliases
                .iter()
                .any(|a| a.driver_version == driver_version && a.arch == arch && a.file == file)
    }

    /// Publishes one probe; never replaces different bytes. Call [`LocalRepo::reindex`] after
    /// a batch.
    /// Publishes a probe or module under its name, never replacing other bytes there; a
    /// failure kept for that name is dropped once it is published.
    pub fn publish(&self, meta: &ProbeMeta, bytes: &[u8]) -> Result<Published> {
        let done = self.publish_file(meta, bytes, true)?;
        if self.drop_failure(meta)? {
            self.reindex()?;
        }
        Ok(done)
    }

    /// Adds a probe or module of another repository (a shard's) under its name, by the same
    /// rule as [`LocalRepo::publish`] (never replacing other bytes), without reindexing: call
    /// [`LocalRepo::reindex`] once after the last.
    pub fn import(&self, meta: &ProbeMeta, bytes: &[u8]) -> Result<Published> {
        let done = self.publish_file(meta, bytes, false)?;
        self.drop_failure(meta)?;
        Ok(done)
    }

    /// Keeps another repository's failure, unless its file is published here; no reindex.
    pub fn import_failure(&self, f: &FailureRecord) -> Result<()> {
        if self.exists(&f.driver_version, &f.arch, &f.file) {
            return Ok(());
        }
        let p = self.failure_path(&f.driver_version, &f.arch, &f.file);
        let json = serde_json::to_vec_pretty(f).expect("serializable");
        write_atomic(&p, &json).map_err(io(&p))
    }

    /// Removes the failure kept for a published file; whether there was one.
    fn drop_failure(&self, meta: &ProbeMeta) -> Result<bool> {
        let f = self.failure_path(&meta.driver_version, &meta.arch, &meta.file);
        if !f.is_file() {
            return Ok(false);
        }
        fs::remove_file(&f).map_err(io(&f))?;
        Ok(true)
    }

    fn publish_file(&self, meta: &ProbeMeta, bytes: &[u8], reindex: bool) -> Result<Published> {
        let path = self.probe_path(&meta.driver_version, &meta.arch, &meta.file);
        let mp = self.meta_path(&meta.driver_version, &meta.arch, &meta.file);
        // The record of what was published under this name, if any: the same bytes keep it
        // (its `built_at` is when they were first published).
        let recorded = self
            .record(&meta.driver_version, &meta.arch, &meta.file)
            .filter(|r| r.sha256 == meta.sha256);
        // An alias under this name gives way to the kernel whose own name it is.
        if self.is_alias(&meta.driver_version, &meta.arch, &meta.file) && path.is_file() {
            fs::remove_file(&path).map_err(io(&path))?;
        }
        if let Ok(existing) = fs::read(&path) {
            let old = crate::base::sha256(&existing);
            if old == meta.sha256 {
                // Its metadata may be missing after a killed run: restore it.
                if !mp.is_file() {
                    let json = serde_json::to_vec_pretty(meta).expect("serializable");
                    write_atomic(&mp, &json).map_err(io(&mp))?;
                }
                return Ok(Published::Unchanged);
            }
            if recorded.is_some() {
                // Not a conflict: the file was damaged after it was published, and this
                // build made the recorded bytes again.
                return self.restore(&path, bytes, &old);
            }
            return Err(Error::Conflict {
                path,
                existing: old,
                new: meta.sha256.clone(),
            });
        }
        if recorded.is_none() {
            let json = serde_json::to_vec_pretty(meta).expect("serializable");
            write_atomic(&mp, &json).map_err(io(&mp))?;
        }
        // No-replace: link the finished temp file into place; fails if someone got there first.
        let dir = path.parent().expect("has a parent");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".probeforge-")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(io(dir))?;
        tmp.as_file().sync_all().map_err(io(dir))?;
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io(dir))?;
        // Under the index lock: a reindex of this run (which writes aliases) sees this probe
        // either not yet there, or there; an alias written meanwhile under its name gives way.
        let linked = {
            let _no_reindex = self.index_lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_alias(&meta.driver_version, &meta.arch, &meta.file) && path.is_file() {
                fs::remove_file(&path).map_err(io(&path))?;
            }
            fs::hard_link(tmp.path(), &path)
        };
        match linked {
            Ok(()) => {
                let now = crate::base::timestamp();
                let stamps = Stamps {
                    first_seen: None,
                    verified_at: meta.verified.as_ref().map(|_| now.clone()),
                    published: Some(now),
                };
                self.stamp(&meta.driver_version, &meta.arch, &meta.file, &stamps)?;
                // The indexes follow each new probe at once: a run killed later leaves every
                // published probe listed in its SHA256SUMS and index.json.
                if reindex {
                    self.reindex()?;
                }
                Ok(Published::New)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let existing = fs::read(&path).map_err(io(&path))?;
                let old = crate::base::sha256(&existing);
                if old == meta.sha256 {
                    Ok(Published::Unchanged)
                } else {
                    Err(Error::Conflict {
                        path,
                        existing: old,
                        new: meta.sha256.clone(),
                    })
                }
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Puts `bytes` (the recorded ones) in place of a damaged file, which is kept aside
    /// (hard-linked there first, then atomically replaced: readers see one or the other).
    fn restore(&self, path: &Path, bytes: &[u8], damaged_sha256: &str) -> Result<Published> {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let aside = aside_path(&self.root, rel, damaged_sha256);
        let adir = aside.parent().expect("has a parent");
        fs::create_dir_all(adir).map_err(io(adir))?;
        match fs::hard_link(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&aside)(e)),
        }
        write_atomic(path, bytes).map_err(io(path))?;
        tracing::warn!(
            "`{}` was damaged (sha256 {damaged_sha256}): restored to its recorded bytes; the damaged file is kept at `{}`",
            path.display(),
            aside.display()
        );
        self.reindex()?;
        Ok(Published::Restored)
    }

    /// Every published probe's metadata (probes without metadata are left out; metadata
    /// without its probe, from a run killed in between, is ignored).
    pub fn entries(&self) -> Result<Vec<ProbeMeta>> {
        let base = self.root.join(".probeforge/meta");
        let mut out = Vec::new();
        for p in walk_json(&base)? {
            let Ok(meta) = serde_json::from_slice::<ProbeMeta>(&fs::read(&p).map_err(io(&p))?)
            else {
                continue;
            };
            if self.exists(&meta.driver_version, &meta.arch, &meta.file) {
                out.push(meta);
            }
        }
        out.sort_by(|a, b| {
            (&a.driver_version, &a.arch, &a.file).cmp(&(&b.driver_version, &b.arch, &b.file))
        });
        Ok(out)
    }

    /// Puts every alias [`aliases`] calls for in place (a copy of its probe's bytes, written
    /// atomically), removes the aliases no longer called for (never a probe of its own), and
    /// records them; a refusal is said once, when it first happens.
    fn write_aliases(
        &self,
        entries: &[ProbeMeta],
        failures: &[FailureRecord],
    ) -> Result<(Vec<Alias>, Vec<AliasRefused>)> {
        let (made, refused) = aliases(entries, failures);
        let before = self.alias_state();
        for a in &made {
            let path = self.probe_path(&a.driver_version, &a.arch, &a.file);
            let there = fs::read(&path).ok().map(|b| crate::base::sha256(&b));
            if there.as_deref() != Some(a.sha256.as_str()) {
                let from = self.probe_path(&a.driver_version, &a.arch, &a.of);
                let bytes = fs::read(&from).map_err(io(&from))?;
                write_atomic(&path, &bytes).map_err(io(&path))?;
            }
        }
        for old in &before.aliases {
            let gone = !made.iter().any(|a| {
                a.driver_version == old.driver_version && a.arch == old.arch && a.file == old.file
            });
            let path = self.probe_path(&old.driver_version, &old.arch, &old.file);
            if gone
                && !self
                    .meta_path(&old.driver_version, &old.arch, &old.file)
                    .is_file()
                && path.is_file()
            {
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        for r in refused.iter().filter(|r| !before.refused.contains(r)) {
            tracing::warn!(
                "{}/{}: no alias `{}` for {}: {}",
                r.driver_version,
                r.arch,
                r.file,
                r.of.join(", "),
                r.reason
            );
        }
        let state = AliasState {
            aliases: made,
            refused,
        };
        if !state.aliases.is_empty() || !before.aliases.is_empty() || !state.refused.is_empty() {
            let p = self.root.join(".probeforge/aliases.json");
            let json = serde_json::to_vec_pretty(&state).expect("serializable");
            write_atomic(&p, &json).map_err(io(&p))?;
        }
        Ok((state.aliases, state.refused))
    }

    /// Keeps `SHA256SUMS.asc` true to `SHA256SUMS`: with a signing key, signed again unless
    /// the one there already verifies; without one, a signature the new list has outdated is
    /// removed (with a warning: it would only make every check fail).
    fn sign_sums(&self, dir: &Path, sums: &[u8], unchanged: bool) -> Result<()> {
        let asc = dir.join(SIGNATURE_FILE);
        let existing = fs::read(&asc).ok();
        match &self.signer {
            Some(key) => {
                let valid = existing.as_deref().is_some_and(|sig| {
                    crate::trust::verify_detached(sums, sig, &key.public(), "", "").is_ok()
                });
                if !valid {
                    let sig = key.sign_detached(sums)?;
                    write_atomic(&asc, sig.as_bytes()).map_err(io(&asc))?;
                }
            }
            None if existing.is_some() && !unchanged => {
                tracing::warn!(
                    "`{}` no longer matches the new SHA256SUMS: removed (pass --sign-key to sign it)",
                    asc.display()
                );
                fs::remove_file(&asc).map_err(io(&asc))?;
            }
            None => {}
        }
        Ok(())
    }

    /// Rebuilds `SHA256SUMS` per directory, `index.json` and `INDEX.md` from the metadata.
    pub fn reindex(&self) -> Result<usize> {
        let _one_at_a_time = self.index_lock.lock().unwrap_or_else(|e| e.into_inner());
        let entries = self.entries()?;
        let failures = self.failures()?;
        let (aliases, refused) = self.write_aliases(&entries, &failures)?;
        let mut dirs: BTreeMap<(String, String), Vec<&ProbeMeta>> = BTreeMap::new();
        for e in &entries {
            dirs.entry((e.driver_version.clone(), e.arch.clone()))
                .or_default()
                .push(e);
        }
        for ((dv, arch), list) in &dirs {
            let mut lines: Vec<(&str, &str)> = list
                .iter()
                .map(|e| (e.file.as_str(), e.sha256.as_str()))
                .chain(
                    aliases
                        .iter()
                        .filter(|a| &a.driver_version == dv && &a.arch == arch)
                        .map(|a| (a.file.as_str(), a.sha256.as_str())),
                )
                .collect();
            lines.sort();
            let mut sums = String::new();
            for (file, sha256) in lines {
                sums.push_str(&format!("{sha256}  {file}\n"));
            }
            let dir = self.root.join(dv).join(arch);
            let p = dir.join("SHA256SUMS");
            let before = fs::read(&p).ok();
            if before.as_deref() != Some(sums.as_bytes()) {
                write_atomic(&p, sums.as_bytes()).map_err(io(&p))?;
            }
            self.sign_sums(
                &dir,
                sums.as_bytes(),
                before.as_deref() == Some(sums.as_bytes()),
            )?;
        }
        let mut index = serde_json::json!({
            "format": "probeforge-index-1",
            "probes": entries.iter().map(|e| {
                let mut v = serde_json::to_value(e).expect("serializable");
                v["path"] = serde_json::Value::String(url_path(&e.driver_version, &e.arch, &e.file));
                let stamps = self.stamps(&e.driver_version, &e.arch, &e.file);
                if !stamps.is_empty() {
                    if let (Some(o), serde_json::Value::Object(t)) = (v.as_object_mut(), serde_json::to_value(&stamps).expect("serializable")) {
                        o.extend(t);
                    }
                }
                v
            }).collect::<Vec<_>>(),
            "failures": failures,
        });
        if !aliases.is_empty() || !refused.is_empty() {
            index["aliases"] = aliases
                .iter()
                .map(|a| {
                    let mut v = serde_json::to_value(a).expect("serializable");
                    v["path"] = url_path(&a.driver_version, &a.arch, &a.file).into();
                    v
                })
                .collect();
            index["aliases_refused"] = serde_json::to_value(&refused).expect("serializable");
        }
        let p = self.root.join("index.json");
        write_atomic(
            &p,
            &serde_json::to_vec_pretty(&index).expect("serializable"),
        )
        .map_err(io(&p))?;
        let mut md = String::from("# Falco eBPF probes\n\nBuilt by probeforge. Download `<this URL>/<path>`; check it against `SHA256SUMS` in its directory.\n\n");
        for ((dv, arch), list) in &dirs {
            md.push_str(&format!("## {dv} / {arch} ({} probes)\n\n| target | kernel release | version | sha256 | size |\n|---|---|---|---|---|\n", list.len()));
            for e in list {
                md.push_str(&format!(
                    "| {} | [{}]({}) | {} | `{}` | {} |\n",
                    e.target_id,
                    e.kernel_release,
                    url_path(&e.driver_version, &e.arch, &e.file),
                    e.kernel_version,
                    &e.sha256[..16],
                    e.size
                ));
            }
            md.push('\n');
        }
        if !aliases.is_empty() {
            md.push_str(&format!(
                "## Aliases ({}): the names Falco's loader asks for on Debian backports\n\n| alias | same bytes as |\n|---|---|\n",
                aliases.len()
            ));
            for a in &aliases {
                md.push_str(&format!(
                    "| [{}]({}) | {} |\n",
                    a.file,
                    url_path(&a.driver_version, &a.arch, &a.file),
                    a.of
                ));
            }
            md.push('\n');
        }
        if !failures.is_empty() {
            md.push_str(&format!(
                "## Failed ({})\n\n| driver | arch | kind | target | kernel release | why | when |\n|---|---|---|---|---|---|---|\n",
                failures.len()
            ));
            for f in &failures {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    f.driver_version,
                    f.arch,
                    f.driver,
                    f.target_id,
                    f.kernel_release,
                    f.reason.replace('|', "\\|"),
                    f.at
                ));
            }
            md.push('\n');
        }
        let p = self.root.join("INDEX.md");
        write_atomic(&p, md.as_bytes()).map_err(io(&p))?;
        Ok(entries.len())
    }
}

/// The `.json` files two levels below `base` (`<driver-version>/<arch>/`), if it exists.
fn walk_json(base: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !base.is_dir() {
        return Ok(out);
    }
    for dv in fs::read_dir(base).map_err(io(base))?.flatten() {
        for arch in fs::read_dir(dv.path()).map_err(io(&dv.path()))?.flatten() {
            for m in fs::read_dir(arch.path())
                .map_err(io(&arch.path()))?
                .flatten()
            {
                let p = m.path();
                if p.extension().is_some_and(|e| e == "json") {
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}

/// GitHub Releases as a probe repository: one release per driver version (tag = the driver
/// version), probes as assets named `<arch>_<file>` (asset names cannot hold a `/`). Uses the
/// REST API with a token from `GITHUB_TOKEN`; the API base is configurable
/// (`PROBEFORGE_GITHUB_API`, for GitHub Enterprise or a test server).
#[derive(Debug, Clone)]
pub struct GithubReleases {
    pub api: String,
    pub owner: String,
    pub repo: String,
    pub token: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct GhAsset {
    name: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    browser_download_url: String,
}

#[derive(Debug, serde::Deserialize)]
struct GhRelease {
    #[serde(default)]
    upload_url: String,
    #[serde(default)]
    assets: Vec<GhAsset>,
}

impl GithubReleases {
    pub fn asset_name(arch: &str, file: &str) -> String {
        format!("{arch}_{file}")
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Accept", "application/vnd.github+json".to_owned()),
            ("X-GitHub-Api-Version", "2022-11-28".to_owned()),
        ];
        if let Some(t) = &self.token {
            h.push(("Authorization", format!("Bearer {t}")));
        }
        h
    }

    fn err(&self, url: &str, what: impl Into<String>) -> Error {
        Error::Remote {
            url: crate::http::redact(url),
            what: what.into(),
        }
    }

    /// The release of a driver version, if it exists.
    fn release(&self, c: &crate::http::Client, tag: &str) -> Result<Option<GhRelease>> {
        let url = format!(
            "{}/repos/{}/{}/releases/tags/{}",
            self.api,
            self.owner,
            self.repo,
            crate::base::escape_segment(tag)
        );
        let (status, body) = c
            .request("GET", &url, &self.headers(), None)
            .map_err(|e| self.err(&url, e.to_string()))?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| self.err(&url, format!("bad JSON: {e}"))),
            404 => Ok(None),
            s => Err(self.err(
                &url,
                format!("HTTP {s}: {}", String::from_utf8_lossy(&body)),
            )),
        }
    }

    pub fn exists(
        &self,
        c: &crate::http::Client,
        driver_version: &str,
        arch: &str,
        file: &str,
    ) -> Result<bool> {
        let name = Self::asset_name(arch, file);
        Ok(self
            .release(c, driver_version)?
            .is_some_and(|r| r.assets.iter().any(|a| a.name == name)))
    }

    /// Uploads one probe; an asset of the same name must have the same bytes (never replaced).
    pub fn upload(
        &self,
        c: &crate::http::Client,
        driver_version: &str,
        arch: &str,
        file: &str,
        bytes: &[u8],
    ) -> Result<Published> {
        let name = Self::asset_name(arch, file);
        let sha = crate::base::sha256(bytes);
        let rel = match self.release(c, driver_version)? {
            Some(r) => r,
            None => {
                let url = format!("{}/repos/{}/{}/releases", self.api, self.owner, self.repo);
                let body = serde_json::json!({"tag_name": driver_version, "name": format!("Falco probes for driver {driver_version}")});
                let (status, resp) = c
                    .request(
                        "POST",
                        &url,
                        &self.headers(),
                        Some(body.to_string().as_bytes()),
                    )
                    .map_err(|e| self.err(&url, e.to_string()))?;
                match status {
                    201 => serde_json::from_slice(&resp)
                        .map_err(|e| self.err(&url, format!("bad JSON: {e}")))?,
                    // Another shard created it since we looked: take that one.
                    422 => self.release(c, driver_version)?.ok_or_else(|| {
                        self.err(
                            &url,
                            format!(
                                "creating the release: HTTP 422: {}",
                                String::from_utf8_lossy(&resp)
                            ),
                        )
                    })?,
                    _ => {
                        return Err(self.err(
                            &url,
                            format!(
                                "creating the release: HTTP {status}: {}",
                                String::from_utf8_lossy(&resp)
                            ),
                        ))
                    }
                }
            }
        };
        if let Some(a) = rel.assets.iter().find(|a| a.name == name) {
            return self.same_asset(c, driver_version, a, sha);
        }
        // upload_url is a URI template: `.../assets{?name,label}`.
        let base = rel
            .upload_url
            .split('{')
            .next()
            .unwrap_or_default()
            .to_owned();
        let url = format!("{base}?name={}", crate::base::escape_segment(&name));
        let mut h = self.headers();
        h.push(("Content-Type", "application/octet-stream".to_owned()));
        let (status, resp) = c
            .request("POST", &url, &h, Some(bytes))
            .map_err(|e| self.err(&url, e.to_string()))?;
        if status == 422 {
            // Uploaded by another run since we looked: the same bytes are no conflict.
            let now = self.release(c, driver_version)?;
            if let Some(a) = now.iter().flat_map(|r| &r.assets).find(|a| a.name == name) {
                return self.same_asset(c, driver_version, a, sha);
            }
        }
        if status != 201 {
            return Err(self.err(
                &url,
                format!(
                    "uploading: HTTP {status}: {}",
                    String::from_utf8_lossy(&resp)
                ),
            ));
        }
        Ok(Published::New)
    }

    /// An asset already there: unchanged when it holds `sha`, else a conflict.
    fn same_asset(
        &self,
        c: &crate::http::Client,
        driver_version: &str,
        a: &GhAsset,
        sha: String,
    ) -> Result<Published> {
        let existing = match &a.digest {
            Some(d) => d.trim_start_matches("sha256:").to_owned(),
            None => {
                let (_, b) = c
                    .request("GET", &a.browser_download_url, &[], None)
                    .map_err(|e| self.err(&a.browser_download_url, e.to_string()))?;
                crate::base::sha256(&b)
            }
        };
        match existing == sha {
            true => Ok(Published::Unchanged),
            false => Err(Error::Conflict {
                path: PathBuf::from(format!(
                    "{}/{}@{}:{}",
                    self.owner, self.repo, driver_version, a.name
                )),
                existing,
                new: sha,
            }),
        }
    }
}

/// Where probes are published, or at least looked up.
#[derive(Debug, Clone)]
pub enum Repo {
    Local(LocalRepo),
    /// A static HTTP base URL: existence by HEAD (publishing goes to a local directory).
    Http(String),
    /// `github:OWNER/REPO`.
    Github(GithubReleases),
}

impl Repo {
    pub fn parse(s: &str) -> Repo {
        if let Some((owner, repo)) = s.strip_prefix("github:").and_then(|r| r.split_once('/')) {
            return Repo::Github(GithubReleases {
                api: std::env::var("PROBEFORGE_GITHUB_API")
                    .unwrap_or_else(|_| "https://api.github.com".to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                owner: owner.to_owned(),
                repo: repo.to_owned(),
                token: std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            Repo::Http(s.trim_end_matches('/').to_owned())
        } else {
            Repo::Local(LocalRepo::new(Path::new(s)))
        }
    }

    pub fn exists(
        &self,
        client: Option<&crate::http::Client>,
        driver_version: &str,
        arch: &str,
        file: &str,
    ) -> Result<bool> {
        match self {
            Repo::Local(l) => Ok(l.exists(driver_version, arch, file)),
            Repo::Github(g) => {
                let c = client.ok_or_else(|| Error::Remote {
                    url: g.api.clone(),
                    what: "no HTTP client".into(),
                })?;
                g.exists(c, driver_version, arch, file)
            }
            Repo::Http(base) => {
                let url = format!("{base}/{}", url_path(driver_version, arch, file));
                let c = client.ok_or_else(|| Error::Remote {
                    url: url.clone(),
                    what: "no HTTP client".into(),
                })?;
                c.exists(&url).map_err(|e| Error::Remote {
                    url: crate::http::redact(&url),
                    what: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_escape_the_plus() {
        assert_eq!(
            url_path(
                "8.0.0+driver",
                "x86_64",
                "falco_debian_6.12.57+deb13-amd64_1.o"
            ),
            "8.0.0%2Bdriver/x86_64/falco_debian_6.12.57%2Bdeb13-amd64_1.o"
        );
    }

    /// A signed module's index entry names its signer (hash, subject, issuer, serial, key id),
    /// reads back the same, and an unsigned driver's entry has no `signed_by` at all (older
    /// indexes read as before).
    #[test]
    fn a_signed_modules_signer_is_in_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepo::new(dir.path());
        let meta = |file: &str, bytes: &[u8], signed_by| ProbeMeta {
            driver_version: "9.1.0+driver".into(),
            arch: "x86_64".into(),
            target_id: "debian".into(),
            kernel_release: "6.1.0-57-amd64".into(),
            kernel_version: "1".into(),
            file: file.into(),
            size: bytes.len() as u64,
            sha256: crate::base::sha256(bytes),
            inputs: Vec::new(),
            driver_source_sha256: String::new(),
            patches: Vec::new(),
            toolchain: String::new(),
            flags_sha256: String::new(),
            built_at: "2026-12-06T00:00:00Z".into(),
            unsigned_metadata: false,
            verified: None,
            signed_by,
        };
        let signer = crate::kmod::sign::Signed {
            hash: crate::kmod::sign::Hash::Sha384,
            signer: crate::kmod::sign::CertIdentity {
                subject: "O=probeforge test,CN=module signing".into(),
                issuer: "CN=probeforge CA".into(),
                serial: "7393ebdc".into(),
                key_id: Some("34f6259f5d5d782ea2ea542bee476b76ce7933ad".into()),
            },
        };
        let signed = meta(
            "falco_debian_6.1.0-57-amd64_1.ko",
            b"ko",
            Some(signer.clone()),
        );
        let plain = meta("falco_debian_6.1.0-57-amd64_1.o", b"o", None);
        repo.publish(&signed, b"ko").unwrap();
        repo.publish(&plain, b"o").unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let probes = index["probes"].as_array().unwrap();
        let entry = |file: &str| probes.iter().find(|p| p["file"] == file).unwrap();
        let s = &entry(&signed.file)["signed_by"];
        assert_eq!(s["hash"], "sha384", "{s}");
        assert_eq!(s["subject"], "O=probeforge test,CN=module signing", "{s}");
        assert_eq!(s["issuer"], "CN=probeforge CA", "{s}");
        assert_eq!(s["serial"], "7393ebdc", "{s}");
        assert_eq!(
            s["key_id"], "34f6259f5d5d782ea2ea542bee476b76ce7933ad",
            "{s}"
        );
        let back: ProbeMeta = serde_json::from_value(entry(&signed.file).clone()).unwrap();
        assert_eq!(back.signed_by, Some(signer));
        assert!(entry(&plain.file).get("signed_by").is_none(), "{probes:?}");
        let back: ProbeMeta = serde_json::from_value(entry(&plain.file).clone()).unwrap();
        assert_eq!(back.signed_by, None);
    }

    /// A kept failure is in index.json and INDEX.md until its file is published, then gone;
    /// a newer failure of the same file replaces the older.
    #[test]
    fn a_failure_is_kept_until_its_driver_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepo::new(dir.path());
        let file = "falco_debian_6.1.0-1-amd64_1.ko";
        let mut f = FailureRecord {
            driver_version: "9.1.0+driver".into(),
            arch: "x86_64".into(),
            driver: "kmod".into(),
            target_id: "debian".into(),
            kernel_release: "6.1.0-1-amd64".into(),
            kernel_version: "1".into(),
            file: file.into(),
            reason: "kbuild failed".into(),
            log: "kbuild failed\nmain.c:1: error".into(),
            inputs: vec![("linux-headers-6.1.0-1-amd64".into(), "ab".into())],
            at: "2026-11-30T00:00:00Z".into(),
        };
        repo.record_failure(&f).unwrap();
        f.reason = "no compiler `gcc-99`".into();
        repo.record_failure(&f).unwrap();
        let index = || -> serde_json::Value {
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap()
        };
        let kept = index()["failures"].as_array().unwrap().clone();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0]["reason"], "no compiler `gcc-99`");
        let md = fs::read_to_string(dir.path().join("INDEX.md")).unwrap();
        assert!(
            md.contains("## Failed (1)") && md.contains("gcc-99"),
            "{md}"
        );
        let bytes = b"module".to_vec();
        let meta = ProbeMeta {
            driver_version: f.driver_version.clone(),
            arch: f.arch.clone(),
            target_id: f.target_id.clone(),
            kernel_release: f.kernel_release.clone(),
            kernel_version: f.kernel_version.clone(),
            file: file.into(),
            size: bytes.len() as u64,
            sha256: crate::base::sha256(&bytes),
            inputs: f.inputs.clone(),
            driver_source_sha256: String::new(),
            patches: Vec::new(),
            toolchain: String::new(),
            flags_sha256: String::new(),
            built_at: f.at.clone(),
            unsigned_metadata: false,
            verified: None,
            signed_by: None,
        };
        assert_eq!(repo.publish(&meta, &bytes).unwrap(), Published::New);
        assert_eq!(index()["failures"].as_array().unwrap().len(), 0);
        assert_eq!(index()["probes"].as_array().unwrap().len(), 1);
        assert!(repo.failures().unwrap().is_empty());
    }

    /// A Debian kernel's record as a build makes it (through serde, so that optional fields
    /// added later need no change here).
    pub(crate) fn debian_meta(uname_r: &str, named: &str, bytes: &[u8]) -> ProbeMeta {
        serde_json::from_value(serde_json::json!({
            "driver_version": "9.1.0+driver",
            "arch": "x86_64",
            "target_id": "debian",
            "kernel_release": uname_r,
            "kernel_version": "1",
            "file": format!("falco_debian_{named}_1.o"),
            "size": bytes.len(),
            "sha256": crate::base::sha256(bytes),
            "inputs": [],
            "driver_source_sha256": "",
            "patches": [],
            "toolchain": "",
            "flags_sha256": "",
            "built_at": "2026-12-06T00:00:00Z",
        }))
        .unwrap()
    }

    /// Issue 31 item 5: the loader asks for `falco_debian_7.3.4-1-amd64_1.o` on trixie's
    /// backport `7.3.4-1~bpo13+1`; forky's native `7.3.4-1` owns that name once published.
    #[test]
    fn a_backport_is_published_under_the_loaders_name_until_its_native_kernel_claims_it() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepo::new(dir.path());
        let index = || -> serde_json::Value {
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap()
        };
        let alias = "falco_debian_7.3.4-1-amd64_1.o";
        let bpo = debian_meta("7.3.4+deb13-amd64", "7.3.4-1~bpo13+1-amd64", b"backport");
        repo.publish(&bpo, b"backport").unwrap();
        let at = repo.probe_path("9.1.0+driver", "x86_64", alias);
        assert_eq!(fs::read(&at).unwrap(), b"backport");
        let sums = fs::read_to_string(dir.path().join("9.1.0+driver/x86_64/SHA256SUMS")).unwrap();
        assert!(
            sums.contains(&format!("{}  {alias}\n", bpo.sha256)),
            "{sums}"
        );
        assert_eq!(index()["aliases"][0]["file"], alias);
        assert_eq!(index()["aliases"][0]["of"], bpo.file.as_str());
        assert_eq!(
            index()["aliases"][0]["path"],
            "9.1.0%2Bdriver/x86_64/falco_debian_7.3.4-1-amd64_1.o"
        );
        // An alias is not a probe of its own: the native kernel is still to be built.
        assert!(!repo.exists("9.1.0+driver", "x86_64", alias));
        assert!(repo.exists("9.1.0+driver", "x86_64", &bpo.file));

        let native = debian_meta("7.3.4+deb14-amd64", "7.3.4-1-amd64", b"native");
        assert_eq!(repo.publish(&native, b"native").unwrap(), Published::New);
        assert_eq!(fs::read(&at).unwrap(), b"native");
        assert!(index()["aliases"].as_array().unwrap().is_empty());
        let refused = &index()["aliases_refused"][0];
        assert_eq!(refused["file"], alias);
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("native kernel wins"),
            "{refused}"
        );
        let sums = fs::read_to_string(dir.path().join("9.1.0+driver/x86_64/SHA256SUMS")).unwrap();
        assert_eq!(sums.matches(alias).count(), 1, "{sums}");
    }

    #[test]
    fn two_backports_the_loader_cannot_tell_apart_get_no_alias() {
        let a = debian_meta("6.1.0-0.deb11.47-amd64", "6.1.170-3~deb11u1-amd64", b"a");
        let b = debian_meta("6.1.0-0.deb11.48-amd64", "6.1.170-3~bpo11+1-amd64", b"b");
        let c = debian_meta(
            "6.12.57+deb12-cloud-amd64",
            "6.12.57-1~bpo12+1-cloud-amd64",
            b"c",
        );
        let (made, refused) = aliases(&[a.clone(), b.clone(), c.clone()], &[]);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].file, "falco_debian_6.12.57-1-cloud-amd64_1.o");
        assert_eq!(made[0].of, c.file);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].file, "falco_debian_6.1.170-3-amd64_1.o");
        assert_eq!(refused[0].of, vec![a.file.clone(), b.file.clone()]);
        assert!(
            refused[0].reason.starts_with("ambiguous"),
            "{:?}",
            refused[0]
        );
    }
}

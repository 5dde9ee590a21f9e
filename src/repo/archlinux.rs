//! Listing Arch Linux's kernels from its pacman repositories (`<mirror>/<repo>/os/<arch>/`).
//!
//! Arch signs packages, not databases: a database `.sig` is checked when the mirror has one;
//! otherwise each package probeforge uses (kernel headers here, a compiler's packages when
//! fetched, [`Lister::pacman_package_signed`]) is downloaded (the build needs it anyway), checked against
//! the database's sha256 and size, and its own detached signature (`%PGPSIG%`, else
//! `<file>.sig`) is checked against the target's keys. A kernel whose package is signed by a
//! trusted key is trusted; anything else is `unsigned_metadata`, refused without
//! `--allow-unsigned`. An unsigned database can still withhold a newer kernel (pacman's
//! default has the same limit). The package's own tree names its `uname -r` and `uname -v`.

use super::{cos, http, pacman, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

/// The number after `#` in a `uname -v` (`#1 SMP PREEMPT_DYNAMIC ...` -> `1`); `1` if none.
pub(super) fn hash_number(uname_v: Option<&str>) -> String {
    uname_v
        .and_then(|v| v.strip_prefix('#'))
        .map(|v| {
            v.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "1".into())
}

/// A pacman target's packages for one arch ([`Lister::pacman_index`]).
#[derive(Debug, Default)]
pub struct PacmanIndex {
    /// Each package with its repository's path below the target's mirror (`core/os/x86_64`).
    pub packages: Vec<(String, pacman::DbPackage)>,
    /// The repositories (paths as above) whose database is unsigned: each package used from
    /// one is trusted only by its own signature.
    pub unsigned: Vec<String>,
}

/// One pacman repository of one architecture, as read so far.
struct Repo<'a> {
    t: &'a Target,
    arch: Arch,
    /// `core`, `extra`.
    name: &'a str,
    /// `<mirror>/<repo>/os/<arch>`.
    base: String,
    keyring: &'a crate::trust::Keyring,
    /// The database's own signature was checked and trusted.
    db_signed: bool,
}

impl Repo<'_> {
    fn db_file(&self) -> String {
        format!("{}.db", self.name)
    }
}

impl Lister<'_> {
    /// (`UTS_RELEASE`, `UTS_VERSION`) of a downloaded headers archive, memoized by its digest.
    pub(super) fn tree_facts(
        &self,
        file: &std::path::Path,
        digest: &str,
        url: &str,
    ) -> Result<(String, Option<String>)> {
        let memo = format!("{digest}.tree-facts.v1.json");
        if let Some(f) = self
            .client
            .memo_get(&memo)
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return Ok(f);
        }
        let idx = |what: String| Error::Index {
            url: http::redact(url),
            what,
        };
        let f = std::fs::File::open(file).map_err(|e| idx(e.to_string()))?;
        let facts =
            cos::headers_facts(std::io::BufReader::new(f)).map_err(|e| idx(e.to_string()))?;
        self.client
            .memo_put(&memo, &serde_json::to_vec(&facts).expect("serializable"));
        Ok(facts)
    }

    /// Every package of a pacman target's repositories for `arch`, each with its repository's
    /// path below the target's mirror (`core/os/x86_64`): from the `.files` databases (they
    /// say which package ships which program), a repository without one from its `.db`. A
    /// database's digests are trusted through its own signature (`.sig`) by the target's
    /// keys; a database without one (Arch's) is listed in `unsigned`, and each package used
    /// from it must carry its own signature. A signature that is there and wrong is refused
    /// unless the target allows unsigned metadata.
    pub fn pacman_index(&self, target: &str, arch: Arch) -> Result<PacmanIndex> {
        let t = self.catalog.target(target)?;
        let mirror = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let keyring = t.keyring()?;
        let mut out = PacmanIndex::default();
        for repo in &t.repos {
            let path = format!("{repo}/os/{}", arch.uname_m());
            let base = format!("{mirror}/{path}");
            let label = http::redact(&base);
            let mut found = None;
            for file in [format!("{repo}.files"), format!("{repo}.db")] {
                match self.fetch_meta(&format!("{base}/{file}")) {
                    Ok(b) => {
                        found = Some((file, b));
                        break;
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            let Some((file, db)) = found else {
                tracing::info!("{label}: no {repo}.files or {repo}.db; skipped");
                continue;
            };
            let signed = match self.fetch_meta(&format!("{base}/{file}.sig")) {
                Ok(sig) => t.accept(crate::trust::verify_detached(
                    &db, &sig, &keyring, &label, &file,
                ))?,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e),
            };
            if !signed {
                tracing::info!("{label}/{file} is unsigned: each package used from it is checked by its own signature");
                out.unsigned.push(path.clone());
            }
            let pkgs = pacman::parse_db(&db).map_err(|what| Error::Index {
                url: format!("{label}/{file}"),
                what: what.to_string(),
            })?;
            out.packages
                .extend(pkgs.into_iter().map(|p| (path.clone(), p)));
        }
        Ok(out)
    }

    /// Whether a package downloaded from pacman target `target`'s unsigned database (`url`,
    /// into `file`) carries its own valid signature by the target's keys: `pgpsig` (the
    /// database's `%PGPSIG%`, base64), else `<url>.sig`. Refused without one unless the
    /// target allows unsigned metadata (then `false`, warned).
    pub fn pacman_package_signed(
        &self,
        target: &str,
        url: &str,
        file: &std::path::Path,
        pgpsig: Option<&str>,
    ) -> Result<bool> {
        let t = self.catalog.target(target)?;
        self.package_signed(t, &t.keyring()?, url, file, pgpsig, "its database")
    }

    /// A package's own detached signature over its downloaded `file`, under `t`'s policy; `db`
    /// names the unsigned database for the message.
    fn package_signed(
        &self,
        t: &Target,
        keyring: &crate::trust::Keyring,
        url: &str,
        file: &std::path::Path,
        pgpsig: Option<&str>,
        db: &str,
    ) -> Result<bool> {
        let (dir, name) = url.rsplit_once('/').unwrap_or(("", url));
        let label = http::redact(dir);
        let sig = match pgpsig.map(|s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s)
        }) {
            Some(Ok(sig)) => Some(sig),
            Some(Err(_)) | None => match self.fetch_meta(&format!("{url}.sig")) {
                Ok(s) => Some(s),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            },
        };
        let checked = match sig {
            Some(sig) => {
                let bytes = std::fs::read(file).map_err(|e| Error::Index {
                    url: http::redact(url),
                    what: e.to_string(),
                })?;
                crate::trust::verify_detached(&bytes, &sig, keyring, &label, name)
            }
            None => Err(crate::trust::Error::Unsigned {
                repo: label.clone(),
                file: name.to_owned(),
                detail: Some(format!(
                    "no %PGPSIG% in {db}, no `.sig` beside it, and {db} is unsigned"
                )),
            }),
        };
        t.accept(checked)
    }

    pub(super) fn list_pacman(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let mirror = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let keyring = t.keyring()?;
        let mut out = Vec::new();
        for &arch in arches {
            if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                continue;
            }
            for repo in &t.repos {
                let base = format!("{mirror}/{repo}/os/{}", arch.uname_m());
                let label = http::redact(&base);
                let db_url = format!("{base}/{repo}.db");
                let db = match self.fetch_meta(&db_url) {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => {
                        tracing::info!("{} not found; skipped", http::redact(&db_url));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let db_file = format!("{repo}.db");
                let db_signed = match self.fetch_meta(&format!("{db_url}.sig")) {
                    Ok(sig) => {
                        match crate::trust::verify_detached(&db, &sig, &keyring, &label, &db_file) {
                            Ok(()) => true,
                            // A signature that is there and wrong is never passed over.
                            Err(e) => t.accept(Err(e))?,
                        }
                    }
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e),
                };
                let pkgs = pacman::parse_db(&db).map_err(|what| Error::Index {
                    url: http::redact(&db_url),
                    what: what.to_string(),
                })?;
                let r = Repo {
                    t,
                    arch,
                    name: repo,
                    base: base.clone(),
                    keyring: &keyring,
                    db_signed,
                };
                for p in pkgs {
                    if !pacman::HEADERS.contains(&p.name.as_str()) || p.arch != arch.uname_m() {
                        continue;
                    }
                    match self.pacman_kernel(&r, &p) {
                        Ok(k) => out.push(k),
                        // A database a mirror serves before the packages it lists (mid-sync):
                        // that kernel cannot be had from here; the others can.
                        Err(e @ Error::Unavailable { .. }) => tracing::warn!("{e}"),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        out.sort_by(|a, b| (a.arch, &a.release).cmp(&(b.arch, &b.release)));
        Ok(out)
    }

    fn pacman_kernel(&self, r: &Repo, p: &pacman::DbPackage) -> Result<KernelRecord> {
        let (t, db_file) = (r.t, r.db_file());
        let url = format!("{}/{}", r.base, p.filename);
        let label = http::redact(&r.base);
        if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Index {
                url: format!("{label}/{db_file}"),
                what: format!("package `{}` has no sha256", p.name),
            });
        }
        let size = (p.csize > 0).then_some(p.csize);
        let file = match self.client.fetch_verified(&url, &p.sha256, size) {
            Ok((f, _)) => f,
            Err(http::Error::Digest { .. } | http::Error::Size { .. }) => {
                return Err(Error::PackageDigest {
                    package: p.filename.clone(),
                    url: http::redact(&url),
                    index: format!("{label}/{db_file}"),
                    expected: p.sha256.clone(),
                })
            }
            Err(http::Error::Status { url, status }) if status == 404 || status == 410 => {
                return Err(Error::Unavailable {
                    release: pacman::uname_release(&p.name, &p.version)
                        .unwrap_or_else(|| p.version.clone()),
                    package: p.filename.clone(),
                    url: http::redact(&url),
                    status,
                })
            }
            Err(source) => {
                return Err(Error::Fetch {
                    what: format!("package `{}`", p.filename),
                    source,
                })
            }
        };
        let signed = r.db_signed
            || self.package_signed(
                t,
                r.keyring,
                &url,
                &file,
                p.pgpsig.as_deref(),
                &format!("`{db_file}`"),
            )?;
        let (tree_release, uname_v) = self.tree_facts(&file, &p.sha256, &url)?;
        // The package's own tree is `uname -r`; the name rule is only a cross-check.
        match pacman::uname_release(&p.name, &p.version) {
            Some(r) if r != tree_release => tracing::warn!(
                "`{}` {}: its tree says `{tree_release}`, the naming rule `{r}`; using the tree's",
                p.name,
                p.version
            ),
            _ => {}
        }
        Ok(KernelRecord {
            target: t.name.clone(),
            target_id: t.target_id.clone(),
            release: tree_release,
            kernel_version: hash_number(uname_v.as_deref()),
            arch: r.arch,
            origin: r.name.to_owned(),
            packages: vec![PackageRef {
                name: p.name.clone(),
                version: p.version.clone(),
                url,
                size: p.csize,
                sha256: p.sha256.clone(),
            }],
            unsigned_metadata: !signed,
        })
    }
}

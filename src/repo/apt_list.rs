//! Listing APT repositories (Debian, Ubuntu): each suite's `InRelease` (or `Release` with
//! `Release.gpg`) checked against the target's keys, then the `Packages.{xz,gz}` indexes it
//! lists, fetched by their sha256, and the kernels' header sets read from them by [`apt`]'s
//! parsers. The IO lives here; [`apt`] only parses bytes and must stay that way.

use std::collections::BTreeMap;

use super::{apt, http, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

impl Lister<'_> {
    /// A suite's `Release`, checked against the target's keys: `InRelease` (clear-signed; only
    /// its signed text is parsed), else `Release` with `Release.gpg`. `None` when the suite does
    /// not exist on the mirror; the bool says whether it was signed by a trusted key (false only
    /// with `allow_unsigned`).
    fn release(&self, t: &Target, base: &str) -> Result<Option<(apt::Release, bool)>> {
        let repo = http::redact(base);
        let keyring = t.keyring()?;
        let (text, checked) = match self.fetch_meta(&format!("{base}/InRelease")) {
            Ok(b) => {
                let checked = crate::trust::verify_cleartext(&b, &keyring, &repo, "InRelease");
                let fallback = String::from_utf8_lossy(&b).into_owned();
                match checked {
                    Ok(signed) => (signed, Ok(())),
                    Err(e) => (fallback, Err(e)),
                }
            }
            Err(e) if e.is_not_found() => {
                let release = match self.fetch_meta(&format!("{base}/Release")) {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(e),
                };
                let checked = match self.fetch_meta(&format!("{base}/Release.gpg")) {
                    Ok(sig) => {
                        crate::trust::verify_detached(&release, &sig, &keyring, &repo, "Release")
                    }
                    Err(e) if e.is_not_found() => Err(crate::trust::Error::Unsigned {
                        repo: repo.clone(),
                        file: "Release".into(),
                        detail: Some("no InRelease and no Release.gpg".into()),
                    }),
                    Err(e) => return Err(e),
                };
                (String::from_utf8_lossy(&release).into_owned(), checked)
            }
            Err(e) => return Err(e),
        };
        let signed = t.accept(checked)?;
        Ok(Some((apt::parse_release(&text), signed)))
    }

    pub(super) fn list_apt(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let mut by_key: BTreeMap<(Arch, String), KernelRecord> = BTreeMap::new();
        for &arch in arches {
            if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                continue;
            }
            // All suites of a target together: a flavour in -security may use -common from
            // the same suite, kbuild from the release.
            let mut all: Vec<(String, String, apt::Package)> = Vec::new();
            let mut unsigned = false;
            for s in &t.suites {
                let mname = s.mirror.clone().unwrap_or_else(|| {
                    if arch == Arch::Aarch64 {
                        t.mirror_aarch64.clone().unwrap_or_else(|| t.mirror.clone())
                    } else {
                        t.mirror.clone()
                    }
                });
                let mirror = self.mirrors.resolve(self.catalog, &mname)?;
                let base = format!("{mirror}/dists/{}", s.suite);
                // A suite that does not exist (yet, or any more: backports of an old
                // release) is not an error; a mirror that does not answer is.
                let Some((rel, signed)) = self.release(t, &base)? else {
                    tracing::info!("{} has no suite {}", http::redact(&mirror), s.suite);
                    continue;
                };
                unsigned |= !signed;
                for comp in &t.components {
                    for p in self.packages(&base, &rel, comp, arch.debian())? {
                        all.push((mirror.clone(), s.suite.clone(), p));
                    }
                }
            }
            let pkgs: Vec<apt::Package> = all.iter().map(|(_, _, p)| p.clone()).collect();
            for (mirror, suite, p) in &all {
                if p.arch != arch.debian() || !apt::is_kernel_headers(p, &pkgs) {
                    continue;
                }
                let set = match apt::closure(p, &pkgs) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("{}: {e}", t.name);
                        continue;
                    }
                };
                let release = p.name["linux-headers-".len()..].to_owned();
                let (target_id, kernel_version) = if t.target_id == "ubuntu" {
                    // As falcoctl names it on that machine: the flavour from `uname -r`
                    // (`6.8.0-1030-azure-fde` is `ubuntu-azure`), the version from `uname -v`
                    // (`#37~24.04.1-Ubuntu SMP ...`), which the package version carries.
                    let kv = apt::ubuntu_kernel_version(&p.version).unwrap_or_else(|| "1".into());
                    let uname_v = format!("#{kv}-Ubuntu SMP");
                    let n = crate::loader::name(&crate::loader::System {
                        os_id: "ubuntu",
                        uname_r: &release,
                        uname_v: &uname_v,
                        ..Default::default()
                    });
                    (n.target_id, n.kernel_version)
                } else {
                    (t.target_id.clone(), "1".to_owned())
                };
                let rec = KernelRecord {
                    target: t.name.clone(),
                    target_id,
                    release: release.clone(),
                    kernel_version,
                    arch,
                    origin: suite.clone(),
                    unsigned_metadata: unsigned,
                    packages: set
                        .iter()
                        .map(|q| PackageRef {
                            name: q.name.clone(),
                            version: q.version.clone(),
                            // Every package comes from the mirror of the index that listed it.
                            url: all
                                .iter()
                                .find(|(_, _, x)| x == *q)
                                .map(|(m, _, x)| format!("{m}/{}", x.filename))
                                .unwrap_or_else(|| format!("{mirror}/{}", q.filename)),
                            size: q.size,
                            sha256: q.sha256.clone(),
                        })
                        .collect(),
                };
                let key = (arch, release);
                let newer = by_key.get(&key).is_none_or(|old| {
                    apt::compare_versions(&p.version, &old.packages[0].version)
                        == std::cmp::Ordering::Greater
                });
                if newer {
                    by_key.insert(key, rec);
                }
            }
        }
        let mut v: Vec<KernelRecord> = by_key.into_values().collect();
        v.sort_by(|a, b| (a.arch, &a.release).cmp(&(b.arch, &b.release)));
        Ok(v)
    }

    /// Every binary package of an APT target's suites for `arch` (and `all`) whose name
    /// `keep` accepts, each with the catalog mirror name it is under, from indexes checked
    /// against their signed `Release` (the dependency closure of a kernel's compiler is read
    /// from here). Suites the mirror lacks are passed over.
    pub fn apt_index(
        &self,
        target: &str,
        arch: Arch,
        keep: impl Fn(&str) -> bool + Copy,
    ) -> Result<Vec<(String, apt::Package)>> {
        let t = self.catalog.target(target)?;
        if t.kind != "apt" {
            return Err(Error::Index {
                url: target.to_owned(),
                what: format!("target `{target}` is not an APT repository"),
            });
        }
        let mut out = Vec::new();
        for s in &t.suites {
            let mname = s.mirror.clone().unwrap_or_else(|| match arch {
                Arch::Aarch64 => t.mirror_aarch64.clone().unwrap_or_else(|| t.mirror.clone()),
                _ => t.mirror.clone(),
            });
            let mirror = self.mirrors.resolve(self.catalog, &mname)?;
            let base = format!("{mirror}/dists/{}", s.suite);
            let Some((rel, _)) = self.release(t, &base)? else {
                continue;
            };
            for comp in &t.components {
                for p in self.packages_where(&base, &rel, comp, arch.debian(), keep)? {
                    out.push((mname.clone(), p));
                }
            }
        }
        Ok(out)
    }

    /// Any binary package by name from an APT target's suites (highest version), e.g. a
    /// driver's dkms package or a kernel image.
    pub fn find_package(&self, target: &str, arch: Arch, name: &str) -> Result<PackageRef> {
        let t = self.catalog.target(target)?;
        let mut best: Option<(String, apt::Package)> = None;
        for s in &t.suites {
            let mname = s.mirror.clone().unwrap_or_else(|| t.mirror.clone());
            let mirror = self.mirrors.resolve(self.catalog, &mname)?;
            let base = format!("{mirror}/dists/{}", s.suite);
            let Some((rel, _)) = self.release(t, &base)? else {
                continue;
            };
            for comp in &t.components {
                for p in self.packages_where(&base, &rel, comp, arch.debian(), |n| n == name)? {
                    let newer = best.as_ref().is_none_or(|(_, b)| {
                        apt::compare_versions(&p.version, &b.version) == std::cmp::Ordering::Greater
                    });
                    if newer {
                        best = Some((mirror.clone(), p));
                    }
                }
            }
        }
        let (mirror, p) = best.ok_or_else(|| Error::NoSuchKernel {
            target: target.to_owned(),
            release: name.to_owned(),
            arch,
            newest: "none".into(),
            closest: "none".into(),
        })?;
        Ok(PackageRef {
            url: format!("{mirror}/{}", p.filename),
            name: p.name,
            version: p.version,
            size: p.size,
            sha256: p.sha256,
        })
    }

    /// The kernel packages of one `Packages` index, verified against the `Release`.
    fn packages(
        &self,
        base: &str,
        rel: &apt::Release,
        comp: &str,
        debarch: &str,
    ) -> Result<Vec<apt::Package>> {
        // The parsed kernel packages of an index are cached by the index's digest: a warm
        // listing then reads a few KB of JSON instead of decompressing 50 MB.
        let listed = ["xz", "gz"].iter().find_map(|ext| {
            rel.sha256
                .get(&format!("{comp}/binary-{debarch}/Packages.{ext}"))
        });
        // Checked on every read like any cache entry (see `Client::memo_get`).
        let memo = listed.map(|l| format!("{}.kernel-packages.v4.json", l.sha256));
        if let Some(m) = &memo {
            if let Some(v) = self
                .client
                .memo_get(m)
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                return Ok(v);
            }
        }
        let v = self.packages_where(base, rel, comp, debarch, apt::is_header_part)?;
        if let Some(m) = memo {
            if let Ok(json) = serde_json::to_vec(&v) {
                self.client.memo_put(&m, &json);
            }
        }
        Ok(v)
    }

    fn packages_where(
        &self,
        base: &str,
        rel: &apt::Release,
        comp: &str,
        debarch: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<apt::Package>> {
        let mut last_err = None;
        for ext in ["xz", "gz"] {
            let path = format!("{comp}/binary-{debarch}/Packages.{ext}");
            let Some(listed) = rel.sha256.get(&path) else {
                continue;
            };
            // By hash where the archive offers it: content-addressed, immune to a mirror
            // updating between our Release and Packages requests, and cached by digest.
            let url = if rel.acquire_by_hash {
                format!(
                    "{base}/{comp}/binary-{debarch}/by-hash/SHA256/{}",
                    listed.sha256
                )
            } else {
                format!("{base}/{path}")
            };
            let file = match self
                .client
                .fetch_verified(&url, &listed.sha256, Some(listed.size))
            {
                Ok((f, _)) => f,
                Err(http::Error::Digest { .. } | http::Error::Size { .. }) => {
                    return Err(Error::IndexDigest {
                        url: http::redact(&url),
                        expected: listed.sha256.clone(),
                    })
                }
                Err(e) => {
                    last_err = Some(Error::Fetch {
                        what: format!("cannot fetch `{}`", http::redact(&url)),
                        source: e,
                    });
                    continue;
                }
            };
            let f = std::fs::File::open(&file).map_err(|e| Error::Index {
                url: url.clone(),
                what: e.to_string(),
            })?;
            let mut text = String::new();
            use std::io::Read;
            crate::extract::decompress(std::io::BufReader::new(f), &url)
                .map_err(|e| Error::Index {
                    url: url.clone(),
                    what: e.to_string(),
                })?
                .read_to_string(&mut text)
                .map_err(|e| Error::Index {
                    url: url.clone(),
                    what: format!("cannot decompress: {e}"),
                })?;
            return Ok(apt::parse_packages(&text, keep));
        }
        match last_err {
            Some(e) => Err(e),
            // The Release lists no index for this component/arch: nothing to offer.
            None => Ok(Vec::new()),
        }
    }
}

//! Listing YUM/DNF repositories (CentOS, AlmaLinux, Rocky, Oracle Linux, Fedora, openSUSE,
//! SLES, Amazon and Alibaba Cloud Linux, Photon OS): Amazon Linux's `mirror.list` indirection,
//! `repodata/repomd.xml` checked against `repomd.xml.asc`, then the primary index fetched by
//! its checksum and read by [`yum`]'s parsers. The IO lives here; [`yum`] only parses bytes
//! and must stay that way.

use std::collections::BTreeMap;

use super::{http, yum, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

impl Lister<'_> {
    pub(super) fn list_yum(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let rule = t.headers.clone().unwrap_or_default();
        let mut by_key: BTreeMap<(Arch, String), KernelRecord> = BTreeMap::new();
        for &arch in arches {
            if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                continue;
            }
            let mname = match (arch, &t.mirror_aarch64) {
                (Arch::Aarch64, Some(m)) => m,
                _ => &t.mirror,
            };
            let mirror = self.mirrors.resolve(self.catalog, mname)?;
            // Every repository of the target together: a kernel's srctree package may come
            // from another repository than its objtree package.
            let mut rpms: Vec<yum::Rpm> = Vec::new();
            let mut from: Vec<(String, String, bool)> = Vec::new();
            for path in &t.repos {
                let path = path.replace("{arch}", arch.uname_m());
                let url = format!("{mirror}/{path}");
                let base = if path.ends_with("mirror.list") {
                    let text = match self.fetch_meta(&url) {
                        Ok(t) => t,
                        // A repository this mirror does not carry (yet, or any more).
                        Err(e) if e.is_not_found() => {
                            tracing::info!("{} not found; skipped", http::redact(&url));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    yum::mirror_list_base(&String::from_utf8_lossy(&text), arch.uname_m())
                        .ok_or_else(|| Error::Index {
                            url: http::redact(&url),
                            what: "empty mirror list".into(),
                        })?
                } else {
                    url.clone()
                };
                let (found, signed) = match self.yum_kernels(t, &rule, &base) {
                    Ok(r) => r,
                    Err(e) if e.is_not_found() => {
                        tracing::info!("{} has no repodata; skipped", http::redact(&base));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let origin = path.trim_end_matches("/mirror.list").to_owned();
                for rpm in found {
                    from.push((base.clone(), origin.clone(), signed));
                    rpms.push(rpm);
                }
            }
            let (sets, incomplete) = rule.header_sets(&rpms, arch.uname_m());
            for i in incomplete {
                tracing::warn!(
                    "{}: kernel `{}` not listed: `{}` needs `{}`, which none of the target's repositories lists",
                    t.name,
                    i.release,
                    i.package,
                    i.missing
                );
            }
            for set in sets {
                let origin = &from[set.packages[0]].1;
                let rec = KernelRecord {
                    unsigned_metadata: set.packages.iter().any(|&i| !from[i].2),
                    target: t.name.clone(),
                    target_id: t.target_id.clone(),
                    release: set.release.clone(),
                    kernel_version: "1".into(),
                    arch,
                    origin: origin.clone(),
                    packages: set
                        .packages
                        .iter()
                        .map(|&i| {
                            let (rpm, (base, _, _)) = (&rpms[i], &from[i]);
                            PackageRef {
                                name: rpm.name.clone(),
                                version: format!("{}-{}", rpm.version, rpm.release),
                                url: format!("{base}/{}", rpm.href),
                                size: rpm.size,
                                sha256: rpm.checksum.clone(),
                            }
                        })
                        .collect(),
                };
                by_key.entry((arch, set.release)).or_insert(rec);
            }
        }
        Ok(by_key.into_values().collect())
    }

    /// The header packages `rule` reads of one YUM repository (its base URL), from a
    /// `repomd.xml` checked against `repomd.xml.asc` with the target's keys; the bool says
    /// whether it was signed by a trusted key (false only with `allow_unsigned`).
    fn yum_kernels(
        &self,
        t: &Target,
        rule: &yum::HeaderRule,
        base: &str,
    ) -> Result<(Vec<yum::Rpm>, bool)> {
        let (pick, signed) = self.yum_repomd(t, base)?;
        // The packages a rule reads of an index are cached by the index's digest and the
        // names read: a warm listing reads a few KB of JSON instead of parsing the whole
        // primary (openSUSE's is hundreds of MB of XML). Checked on every read.
        let memo = format!(
            "{}.yum-headers.{}.v1.json",
            pick.checksum,
            rule.names_digest()
        );
        if let Some(v) = self
            .client
            .memo_get(&memo)
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return Ok((v, signed));
        }
        let (url, plain) = self.yum_primary(base, &pick)?;
        let idx_err = |what: String| Error::Index {
            url: http::redact(&url),
            what,
        };
        let keep = |name: &str| rule.wants(name);
        let rpms = if pick.kind == "primary" {
            yum::parse_primary(&plain, keep)
        } else {
            let mut tmp = tempfile::NamedTempFile::new().map_err(|e| idx_err(e.to_string()))?;
            std::io::Write::write_all(&mut tmp, &plain).map_err(|e| idx_err(e.to_string()))?;
            yum::parse_primary_sqlite(tmp.path(), keep)
        }
        .map_err(|e| idx_err(e.to_string()))?;
        for r in &rpms {
            if r.checksum_type != "sha256" {
                return Err(idx_err(format!(
                    "`{}` is checksummed with {}, not sha256",
                    r.href, r.checksum_type
                )));
            }
        }
        if let Ok(json) = serde_json::to_vec(&rpms) {
            self.client.memo_put(&memo, &json);
        }
        Ok((rpms, signed))
    }

    /// A YUM repository's `repomd.xml` checked against `repomd.xml.asc` with the target's keys
    /// (unsigned only with `allow_unsigned`: the bool), and its primary index's entry.
    fn yum_repomd(&self, t: &Target, base: &str) -> Result<(yum::RepomdData, bool)> {
        let md_url = format!("{base}/repodata/repomd.xml");
        let md = self.fetch_meta(&md_url)?;
        let repo = http::redact(base);
        let signed = match t.signed_metadata {
            // Nothing to check: used only when asked to, and never reported as verified.
            false if t.allow_unsigned => {
                tracing::warn!(
                    "`{repo}`: the distribution does not sign its repository metadata; used unverified (--allow-unsigned)"
                );
                false
            }
            false => {
                return Err(Error::MetadataUnsigned {
                    target: t.name.clone(),
                    repo,
                })
            }
            true => {
                let checked = match self.fetch_meta(&format!("{md_url}.asc")) {
                    Ok(sig) => {
                        crate::trust::verify_detached(&md, &sig, &t.keyring()?, &repo, "repomd.xml")
                    }
                    Err(e) if e.is_not_found() => Err(crate::trust::Error::Unsigned {
                        repo: repo.clone(),
                        file: "repodata/repomd.xml".into(),
                        detail: Some("no repomd.xml.asc".into()),
                    }),
                    Err(e) => return Err(e),
                };
                t.accept(checked)?
            }
        };
        let data = yum::parse_repomd(&md).map_err(|what| Error::Index {
            url: http::redact(&md_url),
            what: what.to_string(),
        })?;
        let pick = data
            .iter()
            .find(|d| d.kind == "primary")
            .or_else(|| data.iter().find(|d| d.kind == "primary_db"))
            .ok_or_else(|| Error::Index {
                url: http::redact(&md_url),
                what: "no primary or primary_db metadata".into(),
            })?;
        if pick.checksum_type != "sha256" {
            return Err(Error::Index {
                url: http::redact(&md_url),
                what: format!(
                    "{} is checksummed with {}, not sha256",
                    pick.kind, pick.checksum_type
                ),
            });
        }
        Ok((pick.clone(), signed))
    }

    /// The primary index `pick` names, fetched by its checksum and decompressed: its URL and
    /// bytes.
    fn yum_primary(&self, base: &str, pick: &yum::RepomdData) -> Result<(String, Vec<u8>)> {
        let url = format!("{base}/{}", pick.href);
        let file = match self.client.fetch_verified(&url, &pick.checksum, pick.size) {
            Ok((f, _)) => f,
            Err(http::Error::Digest { .. } | http::Error::Size { .. }) => {
                return Err(Error::IndexDigest {
                    url: http::redact(&url),
                    expected: pick.checksum.clone(),
                })
            }
            Err(source) => {
                return Err(Error::Fetch {
                    what: format!("cannot fetch `{}`", http::redact(&url)),
                    source,
                })
            }
        };
        let idx_err = |what: String| Error::Index {
            url: http::redact(&url),
            what,
        };
        let f = std::fs::File::open(&file).map_err(|e| idx_err(e.to_string()))?;
        let mut plain = Vec::new();
        use std::io::Read;
        crate::extract::decompress(std::io::BufReader::new(f), &url)
            .map_err(|e| idx_err(e.to_string()))?
            .read_to_end(&mut plain)
            .map_err(|e| idx_err(format!("cannot decompress: {e}")))?;
        Ok((url, plain))
    }

    /// Every package of a yum target's repositories for `arch` with its requires, provides
    /// and listed files (what a compiler's closure is read from), from signed metadata (or
    /// unsigned with `allow_unsigned`), each with the catalog mirror and the path below it
    /// (an absolute URL where a `mirror.list` points elsewhere).
    pub fn yum_index(&self, target: &str, arch: Arch) -> Result<Vec<(String, String, yum::Rpm)>> {
        let t = self.catalog.target(target)?;
        let mname = match (arch, &t.mirror_aarch64) {
            (Arch::Aarch64, Some(m)) => m,
            _ => &t.mirror,
        };
        let mirror = self.mirrors.resolve(self.catalog, mname)?;
        let mut out = Vec::new();
        for path in &t.repos {
            let path = path.replace("{arch}", arch.uname_m());
            let url = format!("{mirror}/{path}");
            let base = if path.ends_with("mirror.list") {
                let text = match self.fetch_meta(&url) {
                    Ok(t) => t,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                yum::mirror_list_base(&String::from_utf8_lossy(&text), arch.uname_m()).ok_or_else(
                    || Error::Index {
                        url: http::redact(&url),
                        what: "empty mirror list".into(),
                    },
                )?
            } else {
                url.clone()
            };
            let (pick, _) = match self.yum_repomd(t, &base) {
                Ok(r) => r,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let (url, plain) = self.yum_primary(&base, &pick)?;
            if pick.kind != "primary" {
                return Err(Error::Index {
                    url: http::redact(&url),
                    what: "only a primary_db (sqlite) index: its requires and provides are not read for compilers yet".into(),
                });
            }
            let rpms = yum::parse_primary_full(&plain).map_err(|e| Error::Index {
                url: http::redact(&url),
                what: e.to_string(),
            })?;
            // Below the catalog mirror where it is; else the whole URL.
            let prefix = match base.strip_prefix(mirror.as_str()) {
                Some(rest) => rest.trim_start_matches('/').to_owned(),
                None => base.clone(),
            };
            for r in rpms {
                if r.arch != arch.uname_m() && r.arch != "noarch" {
                    continue;
                }
                if r.checksum_type != "sha256" {
                    continue;
                }
                let file = match prefix.is_empty() {
                    true => r.href.clone(),
                    false => format!("{prefix}/{}", r.href),
                };
                out.push((mname.clone(), file, r));
            }
        }
        Ok(out)
    }
}

//! Listing Bottlerocket's kernels: the kmod kits its TUF repository lists per variant and
//! architecture (`<mirror>/2020-07-07/<variant>/<arch>/` metadata, `<mirror>/targets/` files,
//! named `<sha256>.<name>` under consistent snapshots).
//!
//! The chain is checked from a trusted root (shipped: `catalog/keys/bottlerocket-root.json`,
//! or the file `--keyring` names) through every `<n>.root.json` rotation, then timestamp ->
//! snapshot -> targets, with versions, lengths, hashes and expiry. A chain that does not
//! verify is refused unless `--allow-unsigned`, which lists it as `unsigned_metadata`. Each
//! kit is downloaded against its sha256 and length (the build needs it) and its kernel tree
//! names `uname -r`. Only the newest three minor releases of each variant are listed (each kit
//! is tens of MB).

use std::collections::BTreeSet;

use super::{http, tuf, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

const SHIPPED_ROOT: (&str, &[u8]) = (
    "bottlerocket-root.json",
    include_bytes!("../../catalog/keys/bottlerocket-root.json"),
);

/// A verified (or, with `--allow-unsigned`, only parsed) chain: the final root and the
/// targets; or why it does not verify.
type Chain = Result<(tuf::Root, Vec<(String, tuf::FileMeta)>), tuf::Error>;

/// How many minor series (`1.19`, `1.20`, ...) of a variant are listed.
const MINORS: usize = 3;

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

impl Lister<'_> {
    /// The trusted root and the name it is known by (`--keyring` file or the shipped one).
    fn tuf_root(&self, t: &Target) -> Result<(tuf::Root, String)> {
        let keys_err = |what: String| Error::Keys {
            target: t.name.clone(),
            what,
        };
        let (name, bytes) = match t.keys.first() {
            Some(k) if std::path::Path::new(k).is_file() => (
                k.clone(),
                std::fs::read(k).map_err(|e| keys_err(format!("cannot read `{k}`: {e}")))?,
            ),
            Some(k) if k != SHIPPED_ROOT.0 => {
                return Err(keys_err(format!(
                    "`{k}` is neither a file nor the shipped `{}`",
                    SHIPPED_ROOT.0
                )))
            }
            _ => (SHIPPED_ROOT.0.to_owned(), SHIPPED_ROOT.1.to_vec()),
        };
        let root = tuf::trusted_root(&bytes, &name).map_err(|e| keys_err(e.to_string()))?;
        Ok((root, name))
    }

    /// The verified (or, with `now` `None`, only parsed) chain of one repository: the final
    /// root and the targets. `None` when the repository has no `timestamp.json`.
    fn tuf_chain(
        &self,
        meta: &str,
        (mut root, mut root_name): (tuf::Root, String),
        now: Option<&str>,
    ) -> Result<Option<Chain>> {
        macro_rules! tuf {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Ok(Some(Err(e))),
                }
            };
        }
        // Root rotations, until the next version is not there (TUF 5.3).
        loop {
            let file = format!("{}.root.json", root.version + 1);
            match self.fetch_meta(&format!("{meta}/{file}")) {
                Ok(b) => {
                    root = tuf!(tuf::next_root(&root, &b, &file, now.is_some()));
                    root_name = file;
                }
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e),
            }
        }
        let ts = match self.fetch_meta(&format!("{meta}/timestamp.json")) {
            Ok(b) => b,
            // No repository for this variant here: nothing to verify.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(now) = now {
            tuf!(tuf::check_root_fresh(&root, &root_name, now));
        }
        let snap_meta = tuf!(tuf::timestamp(&root, &ts, now));
        let prefixed = |name: &str, m: &tuf::FileMeta| match (root.consistent_snapshot, m.version) {
            (true, Some(v)) => format!("{meta}/{v}.{name}"),
            _ => format!("{meta}/{name}"),
        };
        let snap = self.fetch_meta(&prefixed("snapshot.json", &snap_meta))?;
        let targets_meta = tuf!(tuf::snapshot(&root, &snap, &snap_meta, now));
        let targets = self.fetch_meta(&prefixed("targets.json", &targets_meta))?;
        let list = tuf!(tuf::targets(&root, &targets, &targets_meta, now));
        Ok(Some(Ok((root, list.into_iter().collect()))))
    }

    pub(super) fn list_bottlerocket(
        &self,
        t: &Target,
        arches: &[Arch],
    ) -> Result<Vec<KernelRecord>> {
        let mirror = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let trusted = self.tuf_root(t)?;
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let now = crate::base::utc(now_secs);
        let mut out = Vec::new();
        for &arch in arches {
            if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                continue;
            }
            for variant in &t.repos {
                let meta = format!("{mirror}/2020-07-07/{variant}/{}", arch.uname_m());
                let label = http::redact(&meta);
                let (root, targets, signed) =
                    match self.tuf_chain(&meta, trusted.clone(), Some(&now))? {
                        None => {
                            tracing::info!("{label} has no timestamp.json; skipped");
                            continue;
                        }
                        Some(Ok((r, l))) => (r, l, true),
                        Some(Err(source)) if t.allow_unsigned => {
                            tracing::warn!("{label}: {source}; used anyway (--allow-unsigned)");
                            match self.tuf_chain(&meta, trusted.clone(), None)? {
                                Some(Ok((r, l))) => (r, l, false),
                                Some(Err(source)) => {
                                    return Err(Error::Tuf {
                                        repo: label,
                                        source,
                                    })
                                }
                                None => continue,
                            }
                        }
                        Some(Err(source)) => {
                            return Err(Error::Tuf {
                                repo: label,
                                source,
                            })
                        }
                    };
                let kits: Vec<(String, &str, tuf::FileMeta)> = targets
                    .iter()
                    .filter_map(|(name, m)| {
                        let v = tuf::kmod_kit_version(name, variant, arch.uname_m())?;
                        Some((name.clone(), v, m.clone()))
                    })
                    .collect();
                let mut minors: Vec<Vec<u64>> = kits
                    .iter()
                    .map(|(_, v, _)| version_key(v).into_iter().take(2).collect())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                minors.reverse();
                minors.truncate(MINORS);
                for (name, ver, m) in &kits {
                    let minor: Vec<u64> = version_key(ver).into_iter().take(2).collect();
                    if !minors.contains(&minor) {
                        continue;
                    }
                    let Some(sha) = m.sha256.clone() else {
                        return Err(Error::Index {
                            url: format!("{label}/targets.json"),
                            what: format!("target `{name}` has no sha256"),
                        });
                    };
                    let url = if root.consistent_snapshot {
                        format!("{mirror}/targets/{sha}.{name}")
                    } else {
                        format!("{mirror}/targets/{name}")
                    };
                    let file = match self.client.fetch_verified(&url, &sha, m.length) {
                        Ok((f, _)) => f,
                        Err(http::Error::Digest { .. } | http::Error::Size { .. }) => {
                            return Err(Error::PackageDigest {
                                package: name.clone(),
                                url: http::redact(&url),
                                index: format!("{label}/targets.json"),
                                expected: sha,
                            })
                        }
                        // Listed by targets.json, not (yet) served: the other kits still are.
                        Err(http::Error::Status { status, .. })
                            if status == 404 || status == 410 =>
                        {
                            tracing::warn!(
                                "kmod kit `{name}` is listed by `{label}/targets.json` but `{}` answers HTTP {status}; passed over",
                                http::redact(&url)
                            );
                            continue;
                        }
                        Err(source) => {
                            return Err(Error::Fetch {
                                what: format!("kmod kit `{name}`"),
                                source,
                            })
                        }
                    };
                    let (release, _) = self.tree_facts(&file, &sha, &url)?;
                    out.push(KernelRecord {
                        target: t.name.clone(),
                        target_id: t.target_id.clone(),
                        release,
                        kernel_version: tuf::falco_kernel_version(variant, ver),
                        arch,
                        origin: variant.clone(),
                        packages: vec![PackageRef {
                            name: name.clone(),
                            version: ver.to_string(),
                            url,
                            size: m.length.unwrap_or(0),
                            sha256: sha,
                        }],
                        unsigned_metadata: !signed,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.arch, &a.release, &a.kernel_version).cmp(&(b.arch, &b.release, &b.kernel_version))
        });
        Ok(out)
    }
}

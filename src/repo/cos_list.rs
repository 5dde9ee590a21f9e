//! Listing Container-Optimized OS: the `cos-tools` bucket's builds, page by page, and each
//! build's `kernel-headers.tgz`, whose own tree names the kernel (memoized by its digest).
//! The IO lives here; [`cos`] only parses bytes and must stay that way.

use super::{archlinux, cos, http, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

impl Lister<'_> {
    /// COS: every build of the bucket (restricted to the target's `repos` prefixes, e.g.
    /// milestones' build-number prefixes) that has `kernel-headers.tgz`.
    pub(super) fn list_cos(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        if !arches.contains(&Arch::X86_64) && !arches.contains(&Arch::Aarch64) {
            return Ok(Vec::new());
        }
        let mirror = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let mut builds = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let url = match &marker {
                Some(m) => format!(
                    "{mirror}/?delimiter=%2F&marker={}",
                    crate::base::escape_segment(m)
                ),
                None => format!("{mirror}/?delimiter=%2F"),
            };
            let xml = self.fetch_meta(&url)?;
            let (mut p, next) = cos::parse_listing(&xml).map_err(|what| Error::Index {
                url: http::redact(&url),
                what: what.to_string(),
            })?;
            builds.append(&mut p);
            match next {
                Some(n) if Some(&n) != marker.as_ref() => marker = Some(n),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for b in builds {
            let build = b.trim_end_matches('/').to_owned();
            // Build IDs are dotted numbers; the bucket also holds other folders.
            if !build.chars().all(|c| c.is_ascii_digit() || c == '.') || !build.contains('.') {
                continue;
            }
            if !t.repos.is_empty() && !t.repos.iter().any(|p| build.starts_with(p.as_str())) {
                continue;
            }
            let url = format!("{mirror}/{build}/kernel-headers.tgz");
            let (file, digest) = match self.client.fetch_unverified(&url) {
                Ok(x) => x,
                Err(http::Error::Status { status: 404, .. }) => continue,
                Err(source) => {
                    return Err(Error::Fetch {
                        what: format!("COS build {build}: cannot fetch `{}`", http::redact(&url)),
                        source,
                    })
                }
            };
            let memo = format!("{digest}.cos-facts.v2.json");
            let facts: (String, Option<String>) = match self
                .client
                .memo_get(&memo)
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(f) => f,
                None => {
                    let f = std::fs::File::open(&file).map_err(|e| Error::Index {
                        url: url.clone(),
                        what: e.to_string(),
                    })?;
                    let facts = cos::headers_facts(std::io::BufReader::new(f)).map_err(|what| {
                        Error::Index {
                            url: http::redact(&url),
                            what: what.to_string(),
                        }
                    })?;
                    self.client
                        .memo_put(&memo, &serde_json::to_vec(&facts).expect("serializable"));
                    facts
                }
            };
            let (release, uname_v) = facts;
            let arch = if release.contains("aarch64") || release.contains("arm64") {
                Arch::Aarch64
            } else {
                Arch::X86_64
            };
            if !arches.contains(&arch) {
                continue;
            }
            let kernel_version = archlinux::hash_number(uname_v.as_deref());
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            out.push(KernelRecord {
                // The bucket listing carries no signatures (only the transport's TLS).
                unsigned_metadata: true,
                target: t.name.clone(),
                target_id: t.target_id.clone(),
                release,
                kernel_version,
                arch,
                origin: build.clone(),
                packages: vec![PackageRef {
                    name: "kernel-headers.tgz".into(),
                    version: build,
                    url,
                    size,
                    sha256: digest,
                }],
            });
        }
        out.sort_by(|a, b| (a.arch, &a.release).cmp(&(b.arch, &b.release)));
        Ok(out)
    }
}

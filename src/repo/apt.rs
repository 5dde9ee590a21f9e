//! APT repositories: `Release` -> `Packages.{xz,gz}` -> kernel header sets.
//!
//! Parsers take bytes; the fetching is in `apt_list.rs` (methods of [`super::Lister`]). A
//! kernel's header set is the dependency closure of its flavour package over header parts
//! ([`is_header_part`]): Debian: flavour -> `-common` -> `linux-kbuild-X`; Ubuntu: flavour ->
//! the shared headers its source package names (`linux-headers-6.8.0-N`,
//! `linux-hwe-6.14-headers-6.14.0-N`, `linux-aws-headers-6.8.0-N`), found through the
//! flavour's own `Depends`, never by name.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One file listed in a `Release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub acquire_by_hash: bool,
    /// Path relative to `dists/<suite>/` -> size and sha256.
    pub sha256: BTreeMap<String, Listed>,
}

/// Parses a `Release` (or the text of an `InRelease`; the signature lines are ignored).
pub fn parse_release(text: &str) -> Release {
    let mut r = Release::default();
    let mut in_sha = false;
    for line in text.lines() {
        if line.starts_with(' ') {
            if in_sha {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [hash, size, path] = f[..] {
                    if let Ok(size) = size.parse() {
                        r.sha256.insert(
                            path.to_owned(),
                            Listed {
                                size,
                                sha256: hash.to_ascii_lowercase(),
                            },
                        );
                    }
                }
            }
            continue;
        }
        in_sha = false;
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Suite" => r.suite = Some(v.to_owned()),
            "Codename" => r.codename = Some(v.to_owned()),
            "Acquire-By-Hash" => r.acquire_by_hash = v == "yes",
            "SHA256" => in_sha = true,
            _ => {}
        }
    }
    r
}

/// A binary package paragraph (the fields we use).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub depends: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub source: Option<String>,
    /// `Installed-Size` in KiB (a meta-package installs next to nothing).
    #[serde(default)]
    pub installed_size: Option<u64>,
    /// The synopsis (first line of `Description`), where the index carries it.
    #[serde(default)]
    pub description: Option<String>,
}

/// Parses the paragraphs of a `Packages` file whose name satisfies `keep` (cheaply skipping
/// the rest of a 50 MB index).
pub fn parse_packages(text: &str, keep: impl Fn(&str) -> bool) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let Some(first) = para.lines().next() else {
            continue;
        };
        let Some(name) = first.strip_prefix("Package: ") else {
            continue;
        };
        if !keep(name.trim()) {
            continue;
        }
        let mut p = Package {
            name: name.trim().to_owned(),
            ..Default::default()
        };
        for line in para.lines().skip(1) {
            let Some((k, v)) = line.split_once(": ") else {
                continue;
            };
            let v = v.trim().to_owned();
            match k {
                "Version" => p.version = v,
                "Architecture" => p.arch = v,
                // Pre-Depends are dependencies too (a library's closure needs them).
                "Depends" | "Pre-Depends" if !p.depends.is_empty() => {
                    p.depends = format!("{}, {v}", p.depends)
                }
                "Depends" | "Pre-Depends" => p.depends = v,
                "Filename" => p.filename = v,
                "Size" => p.size = v.parse().unwrap_or(0),
                "SHA256" => p.sha256 = v,
                "Source" => p.source = Some(v),
                "Installed-Size" => p.installed_size = v.parse().ok(),
                "Description" => p.description = Some(v),
                _ => {}
            }
        }
        if !p.filename.is_empty() && !p.sha256.is_empty() {
            out.push(p);
        }
    }
    out
}

/// One dependency: name, and an optional (operator, version) constraint.
pub fn parse_depends(deps: &str) -> Vec<(String, Option<(String, String)>)> {
    deps.split(',')
        .filter_map(|d| {
            // First alternative only: kernel header packages do not use alternatives.
            let d = d.split('|').next()?.trim();
            let (name, rest) = d.split_once(' ').map_or((d, ""), |(n, r)| (n, r));
            let name = name.split(':').next()?.to_owned();
            let c = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| {
                    let (op, v) = r.trim().split_once(' ')?;
                    Some((op.to_owned(), v.trim().to_owned()))
                });
            Some((name, c))
        })
        .collect()
}

/// dpkg's version ordering (epoch, upstream, revision; `~` sorts before everything).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        let (up, rev) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, up, rev)
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(mut a: &str, mut b: &str) -> Ordering {
        while !a.is_empty() || !b.is_empty() {
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (sa, sb) = (&a[..na], &b[..nb]);
            let (mut ca, mut cb) = (sa.chars(), sb.chars());
            loop {
                let (x, y) = (ca.next(), cb.next());
                if x.is_none() && y.is_none() {
                    break;
                }
                match order(x).cmp(&order(y)) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let x: u128 = a[..da].parse().unwrap_or(0);
            let y: u128 = b[..db].parse().unwrap_or(0);
            match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// Does version `v` satisfy the constraint `c` (`None`: any version)?
pub fn satisfies(v: &str, c: &Option<(String, String)>) -> bool {
    let Some((op, want)) = c else { return true };
    let o = compare_versions(v, want);
    match op.as_str() {
        "=" => o == Ordering::Equal,
        ">=" => o != Ordering::Less,
        "<=" => o != Ordering::Greater,
        ">>" => o == Ordering::Greater,
        "<<" => o == Ordering::Less,
        _ => true,
    }
}

/// Is the name shaped like one kernel's header package (`linux-headers-6.1.0-50-amd64`,
/// `linux-headers-6.12-amd64`), not a versionless meta (`linux-headers-amd64`, Ubuntu's
/// `linux-headers-generic`) or a shared part (`-common`, `-common-rt`), and does it depend on
/// other header parts? Shape alone does not make a kernel: see [`is_kernel_headers`].
fn is_headers_shaped(p: &Package) -> bool {
    let Some(rest) = p.name.strip_prefix("linux-headers-") else {
        return false;
    };
    rest.starts_with(|c: char| c.is_ascii_digit())
        && !rest.ends_with("-common")
        && !rest.ends_with("-common-rt")
        && rest.contains('-')
        && header_deps(p).next().is_some()
}

/// Is this package name a part of some kernel's header set: `linux-headers-*`,
/// `linux-kbuild-*`, or an Ubuntu source's shared headers `linux-<source>-headers-<abi>`
/// (`linux-hwe-6.14-headers-6.14.0-37`, `linux-aws-headers-6.8.0-1040`)?
pub fn is_header_part(name: &str) -> bool {
    name.starts_with("linux-headers-")
        || name.starts_with("linux-kbuild-")
        || name
            .strip_prefix("linux-")
            .and_then(|r| r.split_once("-headers-"))
            .is_some_and(|(_, abi)| abi.starts_with(|c: char| c.is_ascii_digit()))
}

/// The header-part names ([`is_header_part`]) a package depends on.
fn header_deps(p: &Package) -> impl Iterator<Item = String> + '_ {
    parse_depends(&p.depends)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| is_header_part(n))
}

/// Does the synopsis call the package a meta-package or a transitional one?
fn says_meta(p: &Package) -> bool {
    p.description.as_deref().is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        d.contains("meta-package") || d.contains("metapackage") || d.contains("transitional")
    })
}

/// The kernel header package this one depends on, when it is only a pointer to a kernel:
/// every real kernel depends on shared parts (`-common`, kbuild), never on another kernel.
pub fn points_to_kernel<'a>(p: &Package, all: &'a [Package]) -> Option<&'a Package> {
    header_deps(p).find_map(|n| {
        all.iter()
            .find(|q| q.name == n && (q.arch == p.arch || q.arch == "all") && is_headers_shaped(q))
    })
}

/// Is this one kernel's header package: kernel-shaped by name and, by its metadata, neither a
/// meta-package nor a transitional one? Debian's versioned metas (`linux-headers-6.12-amd64`
/// in bookworm-security, `linux-headers-6.1-amd64` in bullseye-security) look like kernels by
/// name; their synopsis says "(meta-package)" and they depend on exactly one real kernel.
pub fn is_kernel_headers(p: &Package, all: &[Package]) -> bool {
    is_headers_shaped(p) && !says_meta(p) && points_to_kernel(p, all).is_none()
}

/// A header package's dependency that no index lists.
#[derive(Debug, thiserror::Error)]
#[error("`{package}` needs `{needs}`{constraint} which no index lists")]
pub struct Unlisted {
    pub package: String,
    pub needs: String,
    /// ` (>= 6.1.0)`, or empty.
    pub constraint: String,
}

/// The header set of a flavour package: itself plus its `linux-headers-*`/`linux-kbuild-*`
/// dependencies, transitively; each dependency resolved to the highest version satisfying it.
pub fn closure<'a>(flavour: &'a Package, all: &'a [Package]) -> Result<Vec<&'a Package>, Unlisted> {
    let mut set: Vec<&Package> = vec![flavour];
    let mut i = 0;
    while i < set.len() {
        for (name, c) in parse_depends(&set[i].depends) {
            if !is_header_part(&name) {
                continue;
            }
            if set.iter().any(|p| p.name == name) {
                continue;
            }
            let best = all
                .iter()
                .filter(|p| {
                    p.name == name
                        && (p.arch == flavour.arch || p.arch == "all")
                        && satisfies(&p.version, &c)
                })
                .max_by(|a, b| compare_versions(&a.version, &b.version))
                .ok_or_else(|| Unlisted {
                    package: flavour.name.clone(),
                    needs: name.clone(),
                    constraint: c
                        .as_ref()
                        .map(|(o, v)| format!(" ({o} {v})"))
                        .unwrap_or_default(),
                })?;
            set.push(best);
        }
        i += 1;
    }
    Ok(set)
}

/// What Ubuntu's `uname -v` says after `#` (up to `-Ubuntu`), from the kernel's package
/// version: the part after `X.Y.Z-ABI.`: `6.8.0-55.57` -> `57`; an HWE or backported kernel
/// keeps its suffix, `6.14.0-37.37~24.04.1` -> `37~24.04.1` (`#37~24.04.1-Ubuntu SMP ...`),
/// which falcoctl puts in the file name as it reads it.
pub fn ubuntu_kernel_version(pkg_version: &str) -> Option<String> {
    let (_, rest) = pkg_version.split_once('-')?;
    let (abi, update) = rest.split_once('.')?;
    (abi.chars().all(|c| c.is_ascii_digit()) && update.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| update.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_version_order() {
        use Ordering::*;
        for (a, b, o) in [
            ("6.1.176-1", "6.1.170-3", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1:1.0", "2.0", Greater),
            ("6.12.57-1", "6.12.57-1", Equal),
            ("5.10.0-35", "5.10.0-4", Greater),
            ("1.0a", "1.0", Greater),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn release_and_packages_and_closure() {
        let rel = parse_release(
            "Suite: oldstable\nCodename: bookworm\nAcquire-By-Hash: yes\nSHA256:\n abcd 12 main/binary-amd64/Packages.xz\nMD5Sum:\n ffff 1 x\n",
        );
        assert_eq!(rel.codename.as_deref(), Some("bookworm"));
        assert!(rel.acquire_by_hash);
        assert_eq!(rel.sha256["main/binary-amd64/Packages.xz"].size, 12);
        assert!(!rel.sha256.contains_key("x"));
        let text = "Package: linux-headers-6.1.0-50-amd64\nVersion: 6.1.176-1\nArchitecture: amd64\nDepends: linux-headers-6.1.0-50-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1), linux-compiler-gcc-12-x86\nFilename: pool/a.deb\nSize: 10\nSHA256: aa\n\nPackage: linux-headers-6.1.0-50-common\nVersion: 6.1.176-1\nArchitecture: all\nFilename: pool/c.deb\nSize: 20\nSHA256: cc\n\nPackage: linux-kbuild-6.1\nVersion: 6.1.176-1\nArchitecture: amd64\nFilename: pool/k.deb\nSize: 5\nSHA256: kk\n\nPackage: linux-headers-amd64\nVersion: 6.1.176-1\nArchitecture: amd64\nDepends: linux-headers-6.1.0-50-amd64 (= 6.1.176-1)\nFilename: pool/m.deb\nSize: 1\nSHA256: mm\n\nPackage: bash\nVersion: 5\nFilename: pool/b.deb\nSize: 1\nSHA256: bb\n";
        let pkgs = parse_packages(text, |n| n.starts_with("linux-"));
        assert_eq!(pkgs.len(), 4);
        let flavours: Vec<_> = pkgs
            .iter()
            .filter(|p| is_kernel_headers(p, &pkgs))
            .collect();
        assert_eq!(flavours.len(), 1);
        let set = closure(flavours[0], &pkgs).unwrap();
        let names: Vec<_> = set.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-headers-6.1.0-50-amd64",
                "linux-headers-6.1.0-50-common",
                "linux-kbuild-6.1"
            ]
        );
        assert_eq!(
            ubuntu_kernel_version("5.15.0-91.101~20.04.1").as_deref(),
            Some("101~20.04.1")
        );
        assert_eq!(ubuntu_kernel_version("6.8.0-55.57").as_deref(), Some("57"));
        assert_eq!(ubuntu_kernel_version("6.1.176-1"), None);
    }

    /// Real index excerpts (bookworm-security and bullseye-security, amd64, 2026-11-30): the
    /// kernels they must yield, and the metas they must not.
    #[test]
    fn metas_of_the_security_archive_are_not_kernels() {
        for (text, kernels, metas) in [
            (
                include_str!("testdata/bookworm-security-amd64.Packages"),
                &[
                    "linux-headers-6.12.117+deb12-amd64",
                    "linux-headers-6.12.117+deb12-cloud-amd64",
                    "linux-headers-6.12.117+deb12-rt-amd64",
                    "linux-headers-6.1.0-57-amd64",
                ][..],
                &[
                    (
                        "linux-headers-6.12-amd64",
                        Some("linux-headers-6.12.117+deb12-amd64"),
                    ),
                    (
                        "linux-headers-6.12-cloud-amd64",
                        Some("linux-headers-6.12.117+deb12-cloud-amd64"),
                    ),
                    (
                        "linux-headers-6.12-rt-amd64",
                        Some("linux-headers-6.12.117+deb12-rt-amd64"),
                    ),
                    ("linux-headers-amd64", Some("linux-headers-6.1.0-57-amd64")),
                ][..],
            ),
            (
                include_str!("testdata/bullseye-security-amd64.Packages"),
                &[
                    "linux-headers-6.1.0-0.deb11.52-amd64",
                    "linux-headers-6.1.0-0.deb11.52-cloud-amd64",
                    "linux-headers-5.10.0-46-amd64",
                ][..],
                &[
                    (
                        "linux-headers-6.1-amd64",
                        Some("linux-headers-6.1.0-0.deb11.52-amd64"),
                    ),
                    (
                        "linux-headers-6.1-cloud-amd64",
                        Some("linux-headers-6.1.0-0.deb11.52-cloud-amd64"),
                    ),
                    ("linux-headers-amd64", Some("linux-headers-5.10.0-46-amd64")),
                ][..],
            ),
        ] {
            let pkgs = parse_packages(text, |n| n.starts_with("linux-"));
            let mut found: Vec<&str> = pkgs
                .iter()
                .filter(|p| is_kernel_headers(p, &pkgs))
                .map(|p| p.name.as_str())
                .collect();
            found.sort();
            let mut want = kernels.to_vec();
            want.sort();
            assert_eq!(found, want);
            for (meta, to) in metas {
                let p = pkgs.iter().find(|p| p.name == *meta).expect(meta);
                assert!(!is_kernel_headers(p, &pkgs), "{meta} listed as a kernel");
                assert_eq!(
                    points_to_kernel(p, &pkgs).map(|k| k.name.as_str()),
                    *to,
                    "{meta}"
                );
            }
            // Each kernel's set is complete: itself, its shared part(s), kbuild.
            for k in pkgs.iter().filter(|p| is_kernel_headers(p, &pkgs)) {
                let set = closure(k, &pkgs).unwrap();
                assert!(set.iter().any(|p| p.name.contains("-common")), "{}", k.name);
                assert!(
                    set.iter().any(|p| p.name.starts_with("linux-kbuild-")),
                    "{}",
                    k.name
                );
            }
        }
        // Without the synopsis (an index that omits it), the structure alone decides.
        let text = include_str!("testdata/bookworm-security-amd64.Packages")
            .lines()
            .filter(|l| !l.starts_with("Description:"))
            .collect::<Vec<_>>()
            .join("\n");
        let pkgs = parse_packages(&text, |n| n.starts_with("linux-"));
        let meta = pkgs
            .iter()
            .find(|p| p.name == "linux-headers-6.12-amd64")
            .unwrap();
        assert!(!is_kernel_headers(meta, &pkgs));
        // A transitional package is not a kernel either.
        let mut t = pkgs
            .iter()
            .find(|p| p.name == "linux-headers-6.1.0-57-amd64")
            .unwrap()
            .clone();
        assert!(is_kernel_headers(&t, &pkgs));
        t.description = Some("transitional package".into());
        assert!(!is_kernel_headers(&t, &pkgs));
    }
}

//! YUM/DNF repositories: `repodata/repomd.xml` -> `primary.xml.gz` (or `primary.sqlite.*`) ->
//! kernel header packages with their checksums, grouped into one set per kernel by a target's
//! [`HeaderRule`] (RHEL's single `kernel-devel`, openSUSE's objtree + srctree pair, Photon's
//! flavoured `linux-*-devel`). Amazon Linux's `mirror.list` indirection is resolved by the
//! caller. Parsers take bytes; nothing here does IO.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::ParseError;

/// One `<data>` entry of `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepomdData {
    pub kind: String,
    pub href: String,
    pub checksum_type: String,
    pub checksum: String,
    pub size: Option<u64>,
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn attr(e: &quick_xml::events::BytesStart, key: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| local(a.key.as_ref()) == key)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// Parses `repomd.xml`.
pub fn parse_repomd(xml: &[u8]) -> Result<Vec<RepomdData>, ParseError> {
    let mut r = Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut cur: Option<RepomdData> = None;
    let mut field: Option<Vec<u8>> = None;
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => {
                let n = local(e.name().as_ref()).to_vec();
                match n.as_slice() {
                    b"data" => {
                        cur = Some(RepomdData {
                            kind: attr(&e, b"type").unwrap_or_default(),
                            href: String::new(),
                            checksum_type: String::new(),
                            checksum: String::new(),
                            size: None,
                        })
                    }
                    b"location" => {
                        if let Some(c) = cur.as_mut() {
                            c.href = attr(&e, b"href").unwrap_or_default();
                        }
                    }
                    b"checksum" => {
                        if let Some(c) = cur.as_mut() {
                            c.checksum_type = attr(&e, b"type").unwrap_or_default();
                        }
                        field = Some(n);
                    }
                    b"size" => field = Some(n),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let (Some(f), Some(c)) = (&field, cur.as_mut()) {
                    let v = t.unescape()?.trim().to_owned();
                    match f.as_slice() {
                        b"checksum" => c.checksum = v,
                        b"size" => c.size = v.parse().ok(),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                field = None;
                if local(e.name().as_ref()) == b"data" {
                    if let Some(c) = cur.take() {
                        out.push(c);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if out.is_empty() {
        return Err(ParseError::Shape("no <data> entries"));
    }
    Ok(out)
}

/// An RPM listed in `primary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rpm {
    pub name: String,
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub checksum_type: String,
    pub checksum: String,
    pub href: String,
    pub size: u64,
    /// What it needs (`<rpm:requires>`); read only by [`parse_primary_full`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Dep>,
    /// What it offers (`<rpm:provides>`: names, sonames such as `libc.so.6()(64bit)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<Dep>,
    /// The files primary lists (those under a `bin/` directory and `/etc`), absolute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// One `<rpm:entry>` of a requires or provides list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dep {
    pub name: String,
    /// `EQ`, `GE`, `LE`, `GT`, `LT`; empty: any version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flags: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ver: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rel: String,
    /// Needed only while installing (`Requires(pre)`), not to run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre: bool,
}

impl Rpm {
    /// `uname -r` of a kernel package: `version-release.arch`.
    pub fn kernel_release(&self) -> String {
        format!("{}-{}.{}", self.version, self.release, self.arch)
    }
}

/// How a distribution packages one kernel's headers, and what `uname -r` its packages give:
/// data in `catalog/targets.json` (a yum target's `headers`), RHEL's layout when absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// The packages holding a kernel's objtree (`include/generated`), each with the suffix its
    /// kernels' `uname -r` carries (`kernel-devel`: none; openSUSE's `kernel-default-devel`:
    /// `-default`; Photon's `linux-aws-devel`: `-aws`). Other names are not kernels.
    pub packages: BTreeMap<String, String>,
    /// `uname -r` from the objtree package's fields: `{version}`, `{release}`, `{release_base}`
    /// (the release without its last `.N`: openSUSE's rebuild counter), `{arch}`, `{flavour}`
    /// (the package's suffix above).
    pub release: String,
    /// The package of the same version and release holding the srctree the objtree package
    /// needs (openSUSE's noarch `kernel-devel`); none when the objtree package is one tree.
    #[serde(default)]
    pub srctree_package: Option<String>,
}

impl Default for HeaderRule {
    /// RHEL's: one `kernel-devel` tree under `/usr/src/kernels/<version>-<release>.<arch>`.
    /// Only the package named `kernel-devel` is a kernel: `kernel-devel-matched` installs
    /// nothing and requires a kernel-devel, and a package that merely provides `kernel-devel`
    /// (a virtual provide) is not that kernel's.
    fn default() -> Self {
        HeaderRule {
            packages: BTreeMap::from([("kernel-devel".to_owned(), String::new())]),
            release: "{version}-{release}.{arch}".into(),
            srctree_package: None,
        }
    }
}

/// One kernel's header packages, as indices into the list they were formed from: the objtree
/// package first, then its srctree package where the rule has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSet {
    pub release: String,
    pub packages: Vec<usize>,
}

/// An objtree package whose srctree package is not in the list: not a buildable kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    pub release: String,
    /// The objtree package's file name (`kernel-default-devel-<v>-<r>.x86_64.rpm`).
    pub package: String,
    /// What is missing, as `name-version-release` (`kernel-devel-<v>-<r>`).
    pub missing: String,
}

impl HeaderRule {
    /// Whether the rule reads this package (an objtree or a srctree package).
    pub fn wants(&self, name: &str) -> bool {
        self.packages.contains_key(name) || self.srctree_package.as_deref() == Some(name)
    }

    /// A short digest of the package names the rule reads: what a parsed index's memo depends
    /// on besides the index itself.
    pub fn names_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut names: Vec<&str> = self.packages.keys().map(String::as_str).collect();
        names.extend(self.srctree_package.as_deref());
        names.sort_unstable();
        hex::encode(&Sha256::digest(names.join("\n").as_bytes())[..8])
    }

    /// `uname -r` of an objtree package's kernel; `None` for other packages, and for a
    /// release the template cannot be filled from (`{release_base}` of a release without `.`).
    pub fn kernel_release(&self, rpm: &Rpm) -> Option<String> {
        let flavour = self.packages.get(&rpm.name)?;
        let base = match self.release.contains("{release_base}") {
            true => rpm.release.rsplit_once('.')?.0,
            false => "",
        };
        Some(
            self.release
                .replace("{version}", &rpm.version)
                .replace("{release_base}", base)
                .replace("{release}", &rpm.release)
                .replace("{arch}", &rpm.arch)
                .replace("{flavour}", flavour),
        )
    }

    /// The header sets of `arch` among `rpms` (any repositories of one target), and the objtree
    /// packages whose srctree package is missing. A srctree package matches by name, epoch,
    /// version and the release without its rebuild counter (SUSE's objtree package requires
    /// `kernel-devel = <version>-<source release>`, and the two are rebuilt apart: their last
    /// `.N` can differ), `noarch` or `arch`; the same release first, else the highest counter.
    pub fn header_sets(&self, rpms: &[Rpm], arch: &str) -> (Vec<HeaderSet>, Vec<Incomplete>) {
        let mut sets = Vec::new();
        let mut incomplete = Vec::new();
        for (i, r) in rpms.iter().enumerate() {
            if r.arch != arch {
                continue;
            }
            let Some(release) = self.kernel_release(r) else {
                continue;
            };
            let mut packages = vec![i];
            if let Some(src) = &self.srctree_package {
                let base = |rel: &str| {
                    rel.rsplit_once('.')
                        .map_or(rel.to_owned(), |b| b.0.to_owned())
                };
                let counter = |rel: &str| {
                    rel.rsplit_once('.')
                        .and_then(|(_, n)| n.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let found = rpms
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| {
                        s.name == *src
                            && (s.arch == "noarch" || s.arch == arch)
                            && s.epoch == r.epoch
                            && s.version == r.version
                            && base(&s.release) == base(&r.release)
                    })
                    .max_by_key(|(j, s)| (s.release == r.release, counter(&s.release), *j))
                    .map(|(j, _)| j);
                match found {
                    Some(j) => packages.push(j),
                    None => {
                        incomplete.push(Incomplete {
                            release,
                            package: r.href.rsplit('/').next().unwrap_or(&r.href).to_owned(),
                            missing: format!("{src}-{}-{}", r.version, r.release),
                        });
                        continue;
                    }
                }
            }
            sets.push(HeaderSet { release, packages });
        }
        (sets, incomplete)
    }
}

/// The repository base URL an Amazon Linux `mirror.list` names, with yum's `$basearch` (Amazon
/// Linux 1 writes it there) replaced by the architecture.
pub fn mirror_list_base(text: &str, basearch: &str) -> Option<String> {
    parse_mirror_list(text).map(|u| u.replace("$basearch", basearch))
}

/// Parses `primary.xml`, keeping packages whose name satisfies `keep`.
pub fn parse_primary(xml: &[u8], keep: impl Fn(&str) -> bool) -> Result<Vec<Rpm>, ParseError> {
    primary(xml, keep, false)
}

/// Parses `primary.xml` with each package's requires, provides and listed files (what a
/// dependency closure reads).
pub fn parse_primary_full(xml: &[u8]) -> Result<Vec<Rpm>, ParseError> {
    primary(xml, |_| true, true)
}

fn primary(xml: &[u8], keep: impl Fn(&str) -> bool, full: bool) -> Result<Vec<Rpm>, ParseError> {
    let mut r = Reader::from_reader(xml);
    // Inside `<rpm:requires>` (true) or `<rpm:provides>` (false).
    let mut list: Option<bool> = None;
    let mut out = Vec::new();
    let mut cur: Option<Rpm> = None;
    let mut field: Option<Vec<u8>> = None;
    let mut depth_in_format = false;
    let mut buf = Vec::new();
    loop {
        let ev = r.read_event_into(&mut buf)?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let n = local(e.name().as_ref()).to_vec();
                match n.as_slice() {
                    b"package" => cur = Some(Rpm::default()),
                    b"format" => depth_in_format = true,
                    b"version" if !depth_in_format => {
                        if let Some(c) = cur.as_mut() {
                            c.epoch = attr(e, b"epoch").unwrap_or_default();
                            c.version = attr(e, b"ver").unwrap_or_default();
                            c.release = attr(e, b"rel").unwrap_or_default();
                        }
                    }
                    b"checksum" if !depth_in_format => {
                        if let Some(c) = cur.as_mut() {
                            c.checksum_type = attr(e, b"type").unwrap_or_default();
                        }
                        field = Some(n);
                    }
                    b"location" => {
                        if let Some(c) = cur.as_mut() {
                            c.href = attr(e, b"href").unwrap_or_default();
                        }
                    }
                    b"size" if !depth_in_format => {
                        if let Some(c) = cur.as_mut() {
                            c.size = attr(e, b"package")
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0);
                        }
                    }
                    b"name" | b"arch" if !depth_in_format => field = Some(n),
                    b"requires" if full && depth_in_format => list = Some(true),
                    b"provides" if full && depth_in_format => list = Some(false),
                    b"entry" => {
                        if let (Some(req), Some(c)) = (list, cur.as_mut()) {
                            let get = |k: &[u8]| attr(e, k).unwrap_or_default();
                            let d = Dep {
                                name: get(b"name"),
                                flags: get(b"flags"),
                                epoch: get(b"epoch"),
                                ver: get(b"ver"),
                                rel: get(b"rel"),
                                pre: matches!(get(b"pre").as_str(), "1" | "true"),
                            };
                            match req {
                                true => c.requires.push(d),
                                false => c.provides.push(d),
                            }
                        }
                    }
                    b"file" if full && depth_in_format => field = Some(n),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let (Some(f), Some(c)) = (&field, cur.as_mut()) {
                    let v = t.unescape()?.trim().to_owned();
                    match f.as_slice() {
                        b"name" => c.name = v,
                        b"arch" => c.arch = v,
                        b"checksum" => c.checksum = v,
                        b"file" => c.files.push(v),
                        _ => {}
                    }
                }
            }
            Event::End(ref e) => {
                field = None;
                match local(e.name().as_ref()) {
                    b"format" => depth_in_format = false,
                    b"requires" | b"provides" => list = None,
                    b"package" => {
                        if let Some(c) = cur.take() {
                            if keep(&c.name) {
                                out.push(c);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// Reads the `packages` table of a `primary.sqlite` database file.
pub fn parse_primary_sqlite(
    db: &std::path::Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Rpm>, ParseError> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = conn
        .prepare("SELECT name, arch, epoch, version, release, checksum_type, pkgId, location_href, size_package FROM packages")
        ?;
    let rows = st.query_map([], |r| {
        Ok(Rpm {
            name: r.get(0)?,
            arch: r.get(1)?,
            epoch: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            version: r.get(3)?,
            release: r.get(4)?,
            checksum_type: r.get(5)?,
            checksum: r.get(6)?,
            href: r.get(7)?,
            size: r.get::<_, i64>(8)? as u64,
            ..Rpm::default()
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        let r = r?;
        if keep(&r.name) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The first URL of an Amazon Linux `mirror.list`.
pub fn parse_mirror_list(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A primary.xml as RHEL-family repositories write it: the real kernel-devel, the
    /// `kernel-devel-matched` meta, and a package that only provides `kernel-devel`.
    #[test]
    fn only_kernel_devel_packages_are_kernels() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="3">
<package type="rpm"><name>kernel-devel</name><arch>x86_64</arch><version epoch="0" ver="5.14.0" rel="570.12.1.el9_6"/>
<checksum type="sha256" pkgid="YES">aa11</checksum><summary>Development package for building kernel modules to match the kernel</summary>
<size package="21000000" installed="70000000" archive="0"/><location href="Packages/kernel-devel-5.14.0-570.12.1.el9_6.x86_64.rpm"/>
<format><rpm:provides><rpm:entry name="kernel-devel" flags="EQ" epoch="0" ver="5.14.0" rel="570.12.1.el9_6"/><rpm:entry name="kernel-devel-uname-r" flags="EQ" epoch="0" ver="5.14.0-570.12.1.el9_6.x86_64"/></rpm:provides></format></package>
<package type="rpm"><name>kernel-devel-matched</name><arch>x86_64</arch><version epoch="0" ver="5.14.0" rel="570.12.1.el9_6"/>
<checksum type="sha256" pkgid="YES">bb22</checksum><summary>Meta package to install matching core and devel packages for a given kernel</summary>
<size package="9000" installed="0" archive="0"/><location href="Packages/kernel-devel-matched-5.14.0-570.12.1.el9_6.x86_64.rpm"/>
<format><rpm:provides><rpm:entry name="kernel-devel-matched" flags="EQ" epoch="0" ver="5.14.0" rel="570.12.1.el9_6"/></rpm:provides><rpm:requires><rpm:entry name="kernel-devel-uname-r" flags="EQ" epoch="0" ver="5.14.0-570.12.1.el9_6.x86_64"/></rpm:requires></format></package>
<package type="rpm"><name>kernel-rt-devel</name><arch>x86_64</arch><version epoch="0" ver="5.14.0" rel="570.12.1.el9_6"/>
<checksum type="sha256" pkgid="YES">cc33</checksum><summary>Development package for building kernel modules to match the kernel</summary>
<size package="21000000" installed="70000000" archive="0"/><location href="Packages/kernel-rt-devel-5.14.0-570.12.1.el9_6.x86_64.rpm"/>
<format><rpm:provides><rpm:entry name="kernel-devel"/></rpm:provides></format></package>
</metadata>"#;
        let all = parse_primary(xml, |_| true).unwrap();
        assert_eq!(all.len(), 3);
        let rule = HeaderRule::default();
        let kernels = parse_primary(xml, |n| rule.wants(n)).unwrap();
        assert_eq!(kernels.len(), 1, "{kernels:?}");
        assert_eq!(kernels[0].kernel_release(), "5.14.0-570.12.1.el9_6.x86_64");
        assert_eq!(kernels[0].checksum, "aa11");
        assert_eq!(
            kernels[0].href,
            "Packages/kernel-devel-5.14.0-570.12.1.el9_6.x86_64.rpm"
        );
    }

    fn rpm(name: &str, arch: &str, ver: &str, rel: &str, href: &str) -> Rpm {
        Rpm {
            name: name.into(),
            arch: arch.into(),
            version: ver.into(),
            release: rel.into(),
            epoch: "0".into(),
            href: href.into(),
            ..Rpm::default()
        }
    }

    /// openSUSE: the arch objtree package and the noarch srctree package of the same
    /// version-release make one kernel; `uname -r` drops the rebuild counter and adds the
    /// flavour. An objtree package without its srctree package is reported, not listed.
    #[test]
    fn opensuse_pairs_objtree_and_noarch_srctree_packages() {
        let rule = HeaderRule {
            packages: BTreeMap::from([("kernel-default-devel".into(), "-default".into())]),
            release: "{version}-{release_base}{flavour}".into(),
            srctree_package: Some("kernel-devel".into()),
        };
        let rpms = vec![
            rpm(
                "kernel-default-devel",
                "x86_64",
                "5.14.21",
                "150500.55.39.1",
                "x86_64/kernel-default-devel-5.14.21-150500.55.39.1.x86_64.rpm",
            ),
            rpm(
                "kernel-devel",
                "noarch",
                "5.14.21",
                "150500.55.39.1",
                "noarch/kernel-devel-5.14.21-150500.55.39.1.noarch.rpm",
            ),
            rpm(
                "kernel-default-devel",
                "x86_64",
                "5.14.21",
                "150500.55.44.1",
                "x86_64/kernel-default-devel-5.14.21-150500.55.44.1.x86_64.rpm",
            ),
            rpm(
                "kernel-default-devel",
                "aarch64",
                "6.8.1",
                "1.1",
                "aarch64/kernel-default-devel-6.8.1-1.1.aarch64.rpm",
            ),
        ];
        let (sets, incomplete) = rule.header_sets(&rpms, "x86_64");
        assert_eq!(
            sets,
            [HeaderSet {
                release: "5.14.21-150500.55.39-default".into(),
                packages: vec![0, 1]
            }]
        );
        // Rebuilt apart: the srctree package of the same source release, another counter.
        let mut rebuilt = rpms.clone();
        rebuilt[1].release = "150500.55.39.2".into();
        rebuilt.push(rpm(
            "kernel-devel",
            "noarch",
            "5.14.21",
            "150500.55.3.1",
            "noarch/kernel-devel-5.14.21-150500.55.3.1.noarch.rpm",
        ));
        let (sets, _) = rule.header_sets(&rebuilt, "x86_64");
        assert_eq!(sets[0].packages, [0, 1]);
        assert_eq!(
            incomplete,
            [Incomplete {
                release: "5.14.21-150500.55.44-default".into(),
                package: "kernel-default-devel-5.14.21-150500.55.44.1.x86_64.rpm".into(),
                missing: "kernel-devel-5.14.21-150500.55.44.1".into(),
            }]
        );
        assert_eq!(
            rule.kernel_release(&rpms[3]).unwrap(),
            "6.8.1-1-default",
            "Tumbleweed"
        );
        assert!(rule.wants("kernel-devel") && !rule.wants("kernel-devel-matched"));
        // A memo of what this rule read is not what RHEL's rule reads of the same index.
        assert_ne!(rule.names_digest(), HeaderRule::default().names_digest());
        // A release without a rebuild counter cannot give `{release_base}`.
        assert_eq!(
            rule.kernel_release(&rpm("kernel-default-devel", "x86_64", "6.8.1", "1", "")),
            None
        );
    }

    /// Photon OS: each flavour's devel package is its own kernel, `uname -r` suffixed with the
    /// flavour; `linux-esx-devel` is not in the rule (no tracepoints), so it is no kernel.
    #[test]
    fn photon_flavours_are_kernels_of_their_own() {
        let rule = HeaderRule {
            packages: BTreeMap::from([
                ("linux-devel".into(), String::new()),
                ("linux-aws-devel".into(), "-aws".into()),
            ]),
            release: "{version}-{release}{flavour}".into(),
            srctree_package: None,
        };
        let rpms = vec![
            rpm("linux-devel", "x86_64", "4.19.283", "3.ph3", "x86_64/a.rpm"),
            rpm(
                "linux-aws-devel",
                "x86_64",
                "4.19.283",
                "3.ph3",
                "x86_64/b.rpm",
            ),
            rpm(
                "linux-esx-devel",
                "x86_64",
                "4.19.283",
                "3.ph3",
                "x86_64/c.rpm",
            ),
        ];
        let (sets, incomplete) = rule.header_sets(&rpms, "x86_64");
        let releases: Vec<&str> = sets.iter().map(|s| s.release.as_str()).collect();
        assert_eq!(releases, ["4.19.283-3.ph3", "4.19.283-3.ph3-aws"]);
        assert!(incomplete.is_empty());
        assert!(!rule.wants("linux-esx-devel"));
    }

    #[test]
    fn amazon_linux_1_mirror_lists_name_basearch() {
        assert_eq!(
            mirror_list_base(
                "http://packages.us-east-1.amazonaws.com/2018.03/updates/e0ea2d9a2b8a/$basearch\n",
                "x86_64"
            )
            .unwrap(),
            "http://packages.us-east-1.amazonaws.com/2018.03/updates/e0ea2d9a2b8a/x86_64"
        );
    }

    #[test]
    fn repomd_and_primary() {
        let md = br#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary"><checksum type="sha256">abc</checksum><location href="repodata/abc-primary.xml.gz"/><size>10</size></data><data type="primary_db"><checksum type="sha256">def</checksum><location href="repodata/def-primary.sqlite.bz2"/></data></repomd>"#;
        let d = parse_repomd(md).unwrap();
        assert_eq!(d[0].kind, "primary");
        assert_eq!(d[0].href, "repodata/abc-primary.xml.gz");
        assert_eq!(d[0].checksum, "abc");
        assert_eq!(d[0].size, Some(10));
        assert_eq!(d[1].kind, "primary_db");
        let p = br#"<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2"><package type="rpm"><name>kernel-devel</name><arch>x86_64</arch><version epoch="0" ver="5.10.210" rel="201.852.amzn2"/><checksum type="sha256" pkgid="YES">ff00</checksum><location href="Packages/kernel-devel.rpm"/><size package="123" installed="1" archive="2"/><format><rpm:license>GPL</rpm:license><rpm:provides><rpm:entry name="kernel-devel" ver="9.9"/></rpm:provides></format></package><package type="rpm"><name>bash</name><arch>x86_64</arch><version epoch="0" ver="5" rel="1"/><checksum type="sha256">aa</checksum><location href="b.rpm"/><size package="1"/></package></metadata>"#;
        let v = parse_primary(p, |n| n == "kernel-devel").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kernel_release(), "5.10.210-201.852.amzn2.x86_64");
        assert_eq!(v[0].checksum, "ff00");
        assert_eq!(v[0].size, 123);
        assert_eq!(
            parse_mirror_list("# c\nhttp://h/2/core/2.0/x86_64/abc/\n").unwrap(),
            "http://h/2/core/2.0/x86_64/abc"
        );
    }
}

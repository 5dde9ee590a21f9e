//! Arch Linux pacman repositories: `<repo>/os/<arch>/<repo>.db` (a tar, compressed as gzip,
//! zstd or xz: told by magic, never by name) holding one `<name>-<version>/desc` per package in
//! `%FIELD%` blocks, and the kernels' `linux*-headers` packages it lists. Parsers take bytes;
//! nothing here fetches, and nothing here decides trust.

use std::collections::BTreeMap;
use std::io::Read;

use super::ParseError;

/// The headers packages of Arch's kernels: `linux` (`core`), `linux-lts` (`core`), `linux-zen`
/// (`extra`), `linux-hardened` (`extra`).
pub const HEADERS: [&str; 4] = [
    "linux-headers",
    "linux-lts-headers",
    "linux-zen-headers",
    "linux-hardened-headers",
];

/// One package as a repository database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPackage {
    pub filename: String,
    pub name: String,
    /// `pkgver-pkgrel`, with `epoch:` if any.
    pub version: String,
    pub arch: String,
    /// `%CSIZE%`: the size of the package file.
    pub csize: u64,
    pub sha256: String,
    /// `%PGPSIG%`: base64 of the package's binary detached OpenPGP signature.
    pub pgpsig: Option<String>,
}

/// Upper bound on one `desc` file: real ones are a few KB.
const MAX_DESC: u64 = 1 << 20;

/// `%FIELD%` blocks of a `desc` file: field name to its lines (one value a line, up to a
/// blank line).
pub fn parse_desc(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            cur = None;
            continue;
        }
        if cur.is_none() && line.len() > 2 && line.starts_with('%') && line.ends_with('%') {
            let name = line[1..line.len() - 1].to_owned();
            out.entry(name.clone()).or_default();
            cur = Some(name);
            continue;
        }
        if let Some(c) = &cur {
            out.entry(c.clone()).or_default().push(line.to_owned());
        }
    }
    out
}

/// Every package of a repository database (the `.db` file's bytes, compressed or not). Other
/// members (`files`, old `depends`) are read past.
pub fn parse_db(bytes: &[u8]) -> Result<Vec<DbPackage>, ParseError> {
    let dec = crate::extract::decompress(bytes, "pacman database")
        .map_err(|e| ParseError::Decompress(Box::new(e)))?;
    let mut tar = tar::Archive::new(dec);
    let mut out = Vec::new();
    for e in tar.entries()? {
        let mut e = e?;
        let path = e.path_bytes().into_owned();
        if !path.ends_with(b"/desc") || e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut text = String::new();
        e.by_ref().take(MAX_DESC).read_to_string(&mut text)?;
        let d = parse_desc(&text);
        let one = |k: &str| d.get(k).and_then(|v| v.first()).cloned();
        let (Some(filename), Some(name), Some(version)) =
            (one("FILENAME"), one("NAME"), one("VERSION"))
        else {
            return Err(ParseError::Shape(
                "a package's desc lacks %FILENAME%, %NAME% or %VERSION%",
            ));
        };
        // A file name is one path segment of the repository directory, nothing else.
        if filename.contains('/') || filename.starts_with('.') {
            return Err(ParseError::Shape("a %FILENAME% is not a plain file name"));
        }
        out.push(DbPackage {
            filename,
            name,
            version,
            arch: one("ARCH").unwrap_or_default(),
            csize: one("CSIZE").and_then(|s| s.parse().ok()).unwrap_or(0),
            sha256: one("SHA256SUM").unwrap_or_default().to_ascii_lowercase(),
            pgpsig: one("PGPSIG").filter(|s| !s.is_empty()),
        });
    }
    if out.is_empty() {
        return Err(ParseError::Shape("no package in the database"));
    }
    Ok(out)
}

/// `uname -r` of a kernel from its headers package's name and version, by Arch's PKGBUILD
/// convention: `linux-headers 6.8.1.arch1-1` -> `6.8.1-arch1-1` (`6.8.arch1-1` ->
/// `6.8.0-arch1-1`), `linux-lts-headers 6.6.22-1` -> `6.6.22-1-lts`, `linux-zen-headers
/// 6.8.1.zen1-1` -> `6.8.1-zen1-1-zen`. The tree itself has the last word (see the lister).
pub fn uname_release(name: &str, version: &str) -> Option<String> {
    let flavour = name.strip_prefix("linux")?.strip_suffix("-headers")?;
    let flavour = flavour.strip_prefix('-').unwrap_or(flavour);
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    let (pkgver, pkgrel) = version.rsplit_once('-')?;
    // The kernel's version, then an optional `.<tag>` (arch1, zen1, hardened1).
    let (base, tag) = match pkgver.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => {
            let (b, t) = pkgver.split_at(i);
            (b.strip_suffix('.')?, Some(t))
        }
        None => (pkgver, None),
    };
    let nums: Vec<&str> = base.split('.').collect();
    if nums.is_empty()
        || nums.len() > 3
        || nums
            .iter()
            .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut r = nums.join(".");
    if nums.len() == 2 {
        r.push_str(".0");
    }
    if let Some(t) = tag {
        r.push('-');
        r.push_str(t);
    }
    r.push('-');
    r.push_str(pkgrel);
    if !flavour.is_empty() {
        r.push('-');
        r.push_str(flavour);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_follow_arch_pkgbuilds() {
        let cases = [
            ("linux-headers", "6.8.1.arch1-1", "6.8.1-arch1-1"),
            ("linux-headers", "6.8.arch1-1", "6.8.0-arch1-1"),
            ("linux-headers", "6.7.2.arch1-2", "6.7.2-arch1-2"),
            ("linux-lts-headers", "6.6.22-1", "6.6.22-1-lts"),
            ("linux-zen-headers", "6.8.1.zen1-1", "6.8.1-zen1-1-zen"),
            (
                "linux-hardened-headers",
                "6.7.10.hardened1-1",
                "6.7.10-hardened1-1-hardened",
            ),
        ];
        for (n, v, want) in cases {
            assert_eq!(uname_release(n, v).as_deref(), Some(want), "{n} {v}");
        }
        assert_eq!(uname_release("linux-firmware", "20240312-1"), None);
        assert_eq!(uname_release("linux-headers", "garbage"), None);
    }

    #[test]
    fn desc_blocks_as_repo_add_writes_them() {
        let d = parse_desc(
            "%FILENAME%\nlinux-headers-6.8.1.arch1-1-x86_64.pkg.tar.zst\n\n%NAME%\nlinux-headers\n\n%DEPENDS%\npahole\nperl\n\n",
        );
        assert_eq!(d["NAME"], ["linux-headers"]);
        assert_eq!(d["DEPENDS"], ["pahole", "perl"]);
    }
}

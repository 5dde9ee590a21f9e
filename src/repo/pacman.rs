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
    /// `%DEPENDS%`: `name`, or `name` with a constraint (`glibc>=2.41`).
    pub depends: Vec<String>,
    /// `%PROVIDES%`: `name` or `name=version` (`libelf.so=1-64`).
    pub provides: Vec<String>,
    /// `%FILES%` of a `.files` database (paths without a leading `/`; directories end in
    /// `/`); empty from a `.db`.
    pub files: Vec<String>,
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
    // `<name>-<version>/files` of a `.files` database, by directory, joined once all is read.
    let mut files: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    for e in tar.entries()? {
        let mut e = e?;
        let path = e.path_bytes().into_owned();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        if let Some(dir) = path.strip_suffix(b"/files") {
            let mut text = String::new();
            e.by_ref().take(MAX_FILES).read_to_string(&mut text)?;
            let list = parse_desc(&text).remove("FILES").unwrap_or_default();
            files.insert(dir.to_vec(), list);
            continue;
        }
        let Some(dir) = path.strip_suffix(b"/desc") else {
            continue;
        };
        dirs.push(dir.to_vec());
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
            depends: d.get("DEPENDS").cloned().unwrap_or_default(),
            provides: d.get("PROVIDES").cloned().unwrap_or_default(),
            files: Vec::new(),
        });
    }
    if out.is_empty() {
        return Err(ParseError::Shape("no package in the database"));
    }
    for (p, dir) in out.iter_mut().zip(&dirs) {
        if let Some(f) = files.remove(dir) {
            p.files = f;
        }
    }
    Ok(out)
}

/// Upper bound on one `files` list: a large package's (a kernel's headers) is a few MB.
const MAX_FILES: u64 = 64 << 20;

/// pacman's version comparison (`vercmp`): `[epoch:]pkgver[-pkgrel]`, epochs numerically,
/// then pkgver, then pkgrel where both have one, each by `rpmvercmp`.
pub fn vercmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn evr(v: &str) -> (&str, &str, Option<&str>) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e, r),
            _ => ("0", v),
        };
        match rest.rsplit_once('-') {
            Some((ver, rel)) => (epoch, ver, Some(rel)),
            None => (epoch, rest, None),
        }
    }
    let (ea, va, ra) = evr(a);
    let (eb, vb, rb) = evr(b);
    let num = |e: &str| e.trim_start_matches('0').to_owned();
    let (na, nb) = (num(ea), num(eb));
    na.len()
        .cmp(&nb.len())
        .then_with(|| na.cmp(&nb))
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => std::cmp::Ordering::Equal,
        })
}

/// rpm's segment comparison as pacman's `rpmvercmp` has it: runs of digits against runs of
/// letters (digits newer), separators only split (a different number of them decides); of two
/// versions equal up to where one ends, the rest decides: letters older, anything else newer.
pub fn rpmvercmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a == b {
        return Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    while !one.is_empty() && !two.is_empty() {
        let (l1, l2) = (one.len(), two.len());
        while one.first().is_some_and(|c| !c.is_ascii_alphanumeric()) {
            one = &one[1..];
        }
        while two.first().is_some_and(|c| !c.is_ascii_alphanumeric()) {
            two = &two[1..];
        }
        if one.is_empty() || two.is_empty() {
            break;
        }
        if l1 - one.len() != l2 - two.len() {
            return (l1 - one.len()).cmp(&(l2 - two.len()));
        }
        let digits = one[0].is_ascii_digit();
        let run = |s: &[u8]| {
            s.iter()
                .take_while(|c| match digits {
                    true => c.is_ascii_digit(),
                    false => c.is_ascii_alphabetic(),
                })
                .count()
        };
        let (n1, n2) = (run(one), run(two));
        if n2 == 0 {
            // Numeric segments are newer than alphabetic ones.
            return if digits { Greater } else { Less };
        }
        let (s1, s2) = (&one[..n1], &two[..n2]);
        let o = if digits {
            let strip =
                |s: &[u8]| -> Vec<u8> { s.iter().copied().skip_while(|&c| c == b'0').collect() };
            let (x, y) = (strip(s1), strip(s2));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        } else {
            s1.cmp(s2)
        };
        if o != Equal {
            return o;
        }
        one = &one[n1..];
        two = &two[n2..];
    }
    if one.is_empty() && two.is_empty() {
        return Equal;
    }
    // A remaining alphabetic run never beats an empty string.
    if (one.is_empty() && !two[0].is_ascii_alphabetic())
        || one.first().is_some_and(|c| c.is_ascii_alphabetic())
    {
        Less
    } else {
        Greater
    }
}

/// A `%DEPENDS%` or `%PROVIDES%` entry as (name, constraint, version): `glibc>=2.41` ->
/// (`glibc`, `>=`, `2.41`); `zlib` -> (`zlib`, ``, ``).
pub fn split_dep(d: &str) -> (&str, &str, &str) {
    let d = d.split_once(": ").map_or(d, |(n, _)| n).trim();
    for op in [">=", "<=", "=", "<", ">"] {
        if let Some(i) = d.find(op) {
            return (&d[..i], op, &d[i + op.len()..]);
        }
    }
    (d, "", "")
}

/// Whether `version` meets `op ver` (an empty `op` always does). `=` without a pkgrel
/// matches any pkgrel, as in pacman.
pub fn satisfies(version: &str, op: &str, ver: &str) -> bool {
    use std::cmp::Ordering::*;
    if op.is_empty() {
        return true;
    }
    let version = match ver.contains('-') {
        true => version,
        false => version.rsplit_once('-').map_or(version, |(v, _)| v),
    };
    let o = vercmp(version, ver);
    match op {
        "=" => o == Equal,
        ">=" => o != Less,
        "<=" => o != Greater,
        ">" => o == Greater,
        "<" => o == Less,
        _ => false,
    }
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
    fn vercmp_orders_as_pacman_does() {
        use std::cmp::Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0.1", "1.0", Greater),
            ("1.0a", "1.0", Less),
            ("1.0rc1", "1.0", Less),
            ("2.41+r48", "2.41", Greater),
            ("15.1.1+r7+gf36ec88aa85a-1", "15.1.1+r6+gaa-2", Greater),
            ("1:1.0-1", "2.0-1", Greater),
            ("2.42-1", "2.42-2", Less),
            ("2.42", "2.42-2", Equal),
            ("010", "10", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(vercmp(a, b), want, "{a} vs {b}");
            assert_eq!(vercmp(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(split_dep("glibc>=2.41"), ("glibc", ">=", "2.41"));
        assert_eq!(split_dep("libelf.so=1-64"), ("libelf.so", "=", "1-64"));
        assert_eq!(split_dep("zlib"), ("zlib", "", ""));
        assert!(satisfies("2.41+r48-1", ">=", "2.41"));
        assert!(satisfies("15.1.1-3", "=", "15.1.1"));
        assert!(!satisfies("15.1.1-3", "=", "15.1.1-2"));
        assert!(!satisfies("2.40-1", ">=", "2.41"));
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

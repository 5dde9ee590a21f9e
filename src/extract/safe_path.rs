//! The one place that decides whether an archive entry may be written, and where.
//!
//! Every tar, cpio and ar entry of every package passes through [`Guard`]. It works on the
//! entry's path as the archive spells it (bytes), never on the file system: a path is accepted
//! only if it is relative, has no `..`, no NUL, and no ancestor that is a link this unpack
//! created. Link targets are resolved against the links already known, so a chain of links can
//! never point outside the root, whatever order the archive lists them in ([`Guard::recheck`]).
//! Absolute link targets (`lib/modules/R/build -> /usr/src/...`) are rewritten relative to the
//! root, so that reading the tree later stays inside it.
//!
//! It must never touch the disk: callers write what it returns.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("absolute path")]
    Absolute,
    #[error("path contains `..`")]
    DotDot,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("parent `{0}` is a link")]
    ParentIsLink(String),
    #[error("link target `{0}` resolves outside the root")]
    LinkEscapes(String),
    #[error("hard link target `{0}` is not a regular file written by this unpack")]
    HardlinkTarget(String),
    #[error("link chain too deep (loop?) at `{0}`")]
    LinkLoop(String),
    #[error("{0} entries are not allowed")]
    SpecialFile(&'static str),
    #[error("setuid/setgid bit set (mode {0:o})")]
    SetId(u32),
    #[error("entry replaces `{0}`, which is a link")]
    ReplacesLink(String),
}

/// Normalizes an archive path (`./usr/src/x`, `usr//src/x/`) into components, or refuses it.
/// `Ok(None)` means the entry names the root itself (`./`) and is to be skipped.
pub fn normalize(raw: &[u8]) -> Result<Option<PathBuf>, Refusal> {
    if raw.contains(&0) {
        return Err(Refusal::Nul);
    }
    let s = std::str::from_utf8(raw).map_err(|_| Refusal::NotUtf8)?;
    if s.starts_with('/') {
        return Err(Refusal::Absolute);
    }
    let mut out = PathBuf::new();
    for comp in s.split('/') {
        match comp {
            "" | "." => continue,
            ".." => return Err(Refusal::DotDot),
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        Ok(None)
    } else {
        Ok(Some(out))
    }
}

/// Resolves `target` (as written in a link at `link`) lexically to a root-relative path.
/// `None` when it climbs above the root.
fn lexical(link_parent: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = if target.starts_with('/') {
        Vec::new()
    } else {
        link_parent
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_owned()),
        }
    }
    Some(parts.iter().collect())
}

/// State of one unpack (possibly several packages into one root).
#[derive(Debug, Default)]
pub struct Guard {
    /// Links created so far: root-relative path -> target as it will be written.
    links: BTreeMap<PathBuf, String>,
    /// Regular files written so far (hard links may point only at these).
    files: HashSet<PathBuf>,
}

/// What may be written for an entry, after the guard accepted it.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Skip silently (the root itself).
    Skip,
    Dir(PathBuf),
    File(PathBuf),
    /// Path, and the target to write (made relative if it was absolute).
    Symlink(PathBuf, String),
    /// Path, and the root-relative existing file to link to.
    Hardlink(PathBuf, PathBuf),
}

/// The kinds of entry archives carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    Other,
}

const MAX_LINK_DEPTH: usize = 40;

impl Guard {
    pub fn new() -> Self {
        Self::default()
    }

    fn under_link(&self, path: &Path) -> Option<PathBuf> {
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = path.components().collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            prefix.push(c);
            if self.links.contains_key(&prefix) {
                return Some(prefix);
            }
        }
        None
    }

    /// Decides one entry. `mode` is the archive's permission bits (including setuid etc.).
    pub fn decide(&mut self, raw: &[u8], kind: &Kind, mode: u32) -> Result<Decision, Refusal> {
        match kind {
            Kind::CharDevice => return Err(Refusal::SpecialFile("character device")),
            Kind::BlockDevice => return Err(Refusal::SpecialFile("block device")),
            Kind::Fifo => return Err(Refusal::SpecialFile("fifo")),
            Kind::Socket => return Err(Refusal::SpecialFile("socket")),
            Kind::Other => return Err(Refusal::SpecialFile("unknown-type")),
            _ => {}
        }
        if mode & 0o6000 != 0 {
            return Err(Refusal::SetId(mode & 0o7777));
        }
        let Some(path) = normalize(raw)? else {
            return Ok(Decision::Skip);
        };
        if let Some(link) = self.under_link(&path) {
            return Err(Refusal::ParentIsLink(link.display().to_string()));
        }
        if self.links.contains_key(&path) {
            return Err(Refusal::ReplacesLink(path.display().to_string()));
        }
        match kind {
            Kind::Dir => Ok(Decision::Dir(path)),
            Kind::File => {
                self.files.insert(path.clone());
                Ok(Decision::File(path))
            }
            Kind::Symlink(target) => {
                let target = std::str::from_utf8(target).map_err(|_| Refusal::NotUtf8)?;
                if target.contains('\0') {
                    return Err(Refusal::Nul);
                }
                let parent = path.parent().unwrap_or(Path::new(""));
                let resolved = lexical(parent, target)
                    .ok_or_else(|| Refusal::LinkEscapes(target.to_owned()))?;
                let written = if target.starts_with('/') {
                    relative_to(parent, &resolved)
                } else {
                    target.to_owned()
                };
                self.links.insert(path.clone(), written.clone());
                // Resolving through the links known so far catches chains; `recheck` catches
                // chains whose later links arrive after this one.
                if let Err(e) = self.resolve(&path) {
                    self.links.remove(&path);
                    return Err(e);
                }
                Ok(Decision::Symlink(path, written))
            }
            Kind::Hardlink(target) => {
                let target = normalize(target)
                    .ok()
                    .flatten()
                    .filter(|t| self.files.contains(t))
                    .ok_or_else(|| {
                        Refusal::HardlinkTarget(String::from_utf8_lossy(target).into_owned())
                    })?;
                self.files.insert(path.clone());
                Ok(Decision::Hardlink(path, target))
            }
            _ => unreachable!("special files were refused above"),
        }
    }

    /// Resolves a root-relative path through every known link, as the kernel would.
    /// Fails if any step climbs above the root.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, Refusal> {
        let mut pending: Vec<String> = path
            .components()
            .rev()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mut cur = PathBuf::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    if !cur.pop() {
                        return Err(Refusal::LinkEscapes(path.display().to_string()));
                    }
                    continue;
                }
                _ => {}
            }
            cur.push(&comp);
            if let Some(target) = self.links.get(&cur) {
                hops += 1;
                if hops > MAX_LINK_DEPTH {
                    return Err(Refusal::LinkLoop(path.display().to_string()));
                }
                cur.pop();
                if target.starts_with('/') {
                    cur = PathBuf::new();
                }
                pending.extend(target.split('/').rev().map(str::to_owned));
            }
        }
        Ok(cur)
    }

    /// Checks every link again, now that all are known. Returns the first that escapes.
    pub fn recheck(&self) -> Result<(), (PathBuf, Refusal)> {
        for (link, target) in &self.links {
            if let Err(e) = self.resolve(link) {
                let e = match e {
                    Refusal::LinkEscapes(_) => Refusal::LinkEscapes(target.clone()),
                    other => other,
                };
                return Err((link.clone(), e));
            }
        }
        Ok(())
    }
}

/// The relative path from directory `from` to `to` (both root-relative).
fn relative_to(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_owned(), f.len() - common).collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(g: &mut Guard, p: &str, k: Kind) -> Result<Decision, Refusal> {
        g.decide(p.as_bytes(), &k, 0o644)
    }

    #[test]
    fn plain_paths_are_normalized() {
        let mut g = Guard::new();
        assert_eq!(d(&mut g, "./", Kind::Dir).unwrap(), Decision::Skip);
        assert_eq!(
            d(&mut g, "./usr//src/x/", Kind::Dir).unwrap(),
            Decision::Dir("usr/src/x".into())
        );
    }

    #[test]
    fn refuses_absolute_dotdot_nul_setuid_devices() {
        let mut g = Guard::new();
        assert_eq!(d(&mut g, "/etc/passwd", Kind::File), Err(Refusal::Absolute));
        assert_eq!(d(&mut g, "a/../../x", Kind::File), Err(Refusal::DotDot));
        assert_eq!(d(&mut g, "a\0b", Kind::File), Err(Refusal::Nul));
        assert_eq!(
            g.decide(b"bin/su", &Kind::File, 0o4755),
            Err(Refusal::SetId(0o4755))
        );
        assert!(matches!(
            d(&mut g, "dev/sda", Kind::BlockDevice),
            Err(Refusal::SpecialFile(_))
        ));
        assert!(matches!(
            d(&mut g, "p", Kind::Fifo),
            Err(Refusal::SpecialFile(_))
        ));
    }

    #[test]
    fn debian_scripts_link_is_kept_and_absolute_build_link_made_relative() {
        let mut g = Guard::new();
        let r = d(
            &mut g,
            "usr/src/linux-headers-6.1.0-50-amd64/scripts",
            Kind::Symlink(b"../../lib/linux-kbuild-6.1/scripts".to_vec()),
        )
        .unwrap();
        assert!(matches!(r, Decision::Symlink(_, t) if t == "../../lib/linux-kbuild-6.1/scripts"));
        let r = d(
            &mut g,
            "lib/modules/6.1.0-50-amd64/build",
            Kind::Symlink(b"/usr/src/linux-headers-6.1.0-50-amd64".to_vec()),
        )
        .unwrap();
        assert_eq!(
            r,
            Decision::Symlink(
                "lib/modules/6.1.0-50-amd64/build".into(),
                "../../../usr/src/linux-headers-6.1.0-50-amd64".into()
            )
        );
        g.recheck().unwrap();
    }

    #[test]
    fn refuses_escaping_links_and_writes_through_links() {
        let mut g = Guard::new();
        assert!(matches!(
            d(&mut g, "a/l", Kind::Symlink(b"../../etc".to_vec())),
            Err(Refusal::LinkEscapes(_))
        ));
        d(&mut g, "a/ok", Kind::Symlink(b"../b".to_vec())).unwrap();
        assert!(matches!(
            d(&mut g, "a/ok/file", Kind::File),
            Err(Refusal::ParentIsLink(_))
        ));
        assert!(matches!(
            d(&mut g, "a/ok", Kind::File),
            Err(Refusal::ReplacesLink(_))
        ));
    }

    #[test]
    fn refuses_link_chains_that_escape_in_either_order() {
        // l2's lexical target stays inside, but through l1 (a shallow link) it climbs out.
        let mut g = Guard::new();
        d(&mut g, "a/b/c/l1", Kind::Symlink(b"../../../t".to_vec())).unwrap();
        assert!(matches!(
            d(&mut g, "a/b/c/l2", Kind::Symlink(b"l1/../../..".to_vec())),
            Err(Refusal::LinkEscapes(_))
        ));
        // Reverse order: accepted one by one, caught by the final recheck.
        let mut g = Guard::new();
        d(&mut g, "a/b/c/l2", Kind::Symlink(b"l1/../../..".to_vec())).unwrap();
        d(&mut g, "a/b/c/l1", Kind::Symlink(b"../../../t".to_vec())).unwrap();
        assert!(g.recheck().is_err());
    }

    #[test]
    fn link_loops_are_refused() {
        let mut g = Guard::new();
        d(&mut g, "x", Kind::Symlink(b"y".to_vec())).unwrap();
        assert!(matches!(
            d(&mut g, "y", Kind::Symlink(b"x".to_vec())),
            Err(Refusal::LinkLoop(_))
        ));
    }

    #[test]
    fn hardlinks_only_to_files_written_here() {
        let mut g = Guard::new();
        assert!(matches!(
            d(&mut g, "h", Kind::Hardlink(b"etc/shadow".to_vec())),
            Err(Refusal::HardlinkTarget(_))
        ));
        d(&mut g, "f", Kind::File).unwrap();
        assert_eq!(
            d(&mut g, "h", Kind::Hardlink(b"./f".to_vec())).unwrap(),
            Decision::Hardlink("h".into(), "f".into())
        );
        assert!(matches!(
            d(&mut g, "h2", Kind::Hardlink(b"../f".to_vec())),
            Err(Refusal::HardlinkTarget(_))
        ));
    }
}

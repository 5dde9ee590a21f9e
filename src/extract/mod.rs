//! Unpacking kernel header packages (.deb, .rpm, tarballs) in-process, into a private root.
//!
//! Every format parser streams its entries into one [`Unpacker`], which asks
//! [`safe_path::Guard`] about each entry and is the only code here that writes to disk. Sizes,
//! entry counts and the compression ratio are bounded while streaming. A package that fails
//! leaves nothing of itself behind. Nothing here runs an external tool.

pub mod deb;
pub mod rpm;
pub mod safe_path;
pub mod tarball;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use safe_path::{Decision, Guard, Kind, Refusal};

/// Which entries to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Only what a probe build or `inspect` reads: `include/` directories, `.config`,
    /// `.kernelvariables`, top-level `Makefile`s, and every link.
    #[default]
    ProbeBuild,
    /// Everything (needed to run kbuild itself on the tree).
    Everything,
    /// A driver source archive: only its `driver/` tree (libs) or `usr/src/` (dkms).
    Driver,
    /// A kernel image package: only the `.config` it ships (`boot/config-<release>`, or
    /// `lib/modules/<release>/config`).
    KernelConfig,
}

impl Selection {
    /// Whether an entry at `path` (normalized, root-relative) is wanted. `arch_dir` (the
    /// kernel's `arch/<dir>`), when known, drops the other architectures' headers.
    pub fn wants(self, path: &Path, kind: &Kind, arch_dir: Option<&str>) -> bool {
        if self == Selection::Everything || matches!(kind, Kind::Symlink(_) | Kind::Dir) {
            return true;
        }
        if self == Selection::Driver {
            return path.starts_with("usr/src")
                || path.components().any(|c| c.as_os_str() == "driver");
        }
        if self == Selection::KernelConfig {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            return (path.starts_with("boot") && name.starts_with("config-"))
                || (path.starts_with("lib/modules") && name == "config");
        }
        let comps: Vec<&std::ffi::OsStr> = path.components().map(|c| c.as_os_str()).collect();
        let depth = comps.len();
        for (i, c) in comps.iter().enumerate() {
            if *c == "arch" {
                if let (Some(want), Some(next)) = (arch_dir, comps.get(i + 1)) {
                    if *next != want {
                        return false;
                    }
                }
            }
            if *c == "include" {
                // kbuild's per-option dependency stamps (thousands of empty files): unread.
                return comps.get(i + 1).is_none_or(|n| *n != "config") || comps.len() <= i + 2;
            }
        }
        match path.file_name().and_then(|n| n.to_str()) {
            Some(".config" | ".kernelvariables") => true,
            // A tree's top-level Makefile (flags.rs derives flags from it): Debian's and RPM's
            // trees are at most 4 levels down; Arch's `usr/lib/modules/<r>/build/` is 5.
            Some("Makefile") => {
                depth <= 5
                    || (depth == 6
                        && comps[..3] == ["usr", "lib", "modules"]
                        && comps[4] == "build")
            }
            _ => false,
        }
    }
}

/// Bounds on what one unpack may write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_total_bytes: u64,
    pub max_entries: u64,
    /// Uncompressed bytes (read from the payload, written or not) per compressed byte.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 8 << 30,
            max_entries: 2_000_000,
            max_ratio: 200,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{package}: entry `{entry}` refused")]
    Refused {
        package: String,
        entry: String,
        #[source]
        reason: Refusal,
    },
    #[error("{package}: {what}")]
    Malformed { package: String, what: String },
    #[error("{package}: {what} exceeds the limit of {limit}")]
    Limit {
        package: String,
        what: &'static str,
        limit: u64,
    },
    #[error("{package}: cannot write `{entry}`")]
    Write {
        package: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("{package}: read failed (truncated or corrupt?)")]
    Read {
        package: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{0}`: unknown package format (expected .deb, .rpm, .tar[.gz|.xz|.zst|.bz2], .tgz or a directory)")]
    UnknownFormat(PathBuf),
    #[error("root `{0}` must be a new or empty directory")]
    RootNotEmpty(PathBuf),
    #[error("no kernel headers in {}: {why}", quoted(.files))]
    NoKernelHeaders { files: Vec<String>, why: String },
    #[error("`{file}` needs `{missing}` (its control file's Depends names it), which was not given: that package holds the kernel's srctree `{srctree}`")]
    MissingPackage {
        file: String,
        missing: String,
        srctree: String,
    },
    #[error("in {}", quoted(.files))]
    Kernel {
        files: Vec<String>,
        #[source]
        source: Box<crate::kernel::Error>,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Counts bytes read through it, shared with whoever holds a clone of the counter.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Counting<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Decompresses on another thread, a few MiB ahead of the reader: decoding and writing files
/// then overlap on two cores, as `dpkg-deb`'s decompressor process and tar do.
pub struct ReadAhead {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

const READ_AHEAD_CHUNK: usize = 1 << 20;

impl ReadAhead {
    pub fn new(mut r: impl Read + Send + 'static) -> ReadAhead {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; READ_AHEAD_CHUNK];
            let mut n = 0;
            // Fill whole chunks: fewer messages, and the consumer's reads stay large.
            while n < buf.len() {
                match r.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            buf.truncate(n);
            let last = n == 0;
            // A closed receiver means the unpack stopped (error or limit): stop decoding.
            if tx.send(Ok(buf)).is_err() || last {
                return;
            }
        });
        ReadAhead {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    if b.is_empty() {
                        self.done = true;
                    }
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "decoder thread ended",
                    ))
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A decompressor chosen by magic bytes, not by file name.
pub fn decompress<'a, R: Read + Send + 'a>(
    mut r: R,
    package: &str,
) -> Result<Box<dyn Read + Send + 'a>> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Read {
                    package: package.to_owned(),
                    source,
                })
            }
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let r = head.chain(r);
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        // Multithreaded where the stream has several blocks (Debian's data.tar.xz does).
        Box::new(liblzma::read::XzDecoder::new_parallel(r))
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::new(r).map_err(|source| Error::Read {
                package: package.to_owned(),
                source,
            })?,
        )
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

/// Statistics of an unpack.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Stats {
    pub entries: u64,
    pub written: u64,
    pub bytes: u64,
}

/// Writes accepted entries of one or more packages under one root.
pub struct Unpacker {
    root: PathBuf,
    selection: Selection,
    limits: Limits,
    guard: Guard,
    stats: Stats,
    /// Entries created by the package being unpacked, removed again if it fails.
    created: Vec<PathBuf>,
    /// Compressed bytes consumed by the current package, for the ratio bound.
    compressed: Option<Arc<AtomicU64>>,
    /// Uncompressed payload bytes of the current package.
    payload: u64,
    package: String,
    buf: Vec<u8>,
    arch_dir: Option<String>,
}

impl Unpacker {
    /// `root` must not exist yet, or be an empty directory.
    pub fn new(root: &Path, selection: Selection, limits: Limits) -> Result<Self> {
        match fs::read_dir(root) {
            Ok(mut d) => {
                if d.next().is_some() {
                    return Err(Error::RootNotEmpty(root.to_owned()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|source| Error::Write {
                    package: String::new(),
                    entry: root.display().to_string(),
                    source,
                })?
            }
            Err(source) => {
                return Err(Error::Open {
                    path: root.to_owned(),
                    source,
                })
            }
        }
        Ok(Unpacker {
            root: root.to_owned(),
            selection,
            limits,
            guard: Guard::new(),
            stats: Stats::default(),
            created: Vec::new(),
            compressed: None,
            payload: 0,
            package: String::new(),
            buf: vec![0; 256 * 1024],
            arch_dir: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Restricts a probe-build selection to one kernel architecture (`x86`, `arm64`, ...).
    pub fn set_arch_dir(&mut self, dir: Option<&str>) {
        self.arch_dir = dir.map(str::to_owned);
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Unpacks one package file (format by content), or fails leaving nothing of it behind.
    pub fn unpack_file(&mut self, path: &Path) -> Result<PackageInfo> {
        let name = path.display().to_string();
        let file = fs::File::open(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut r = io::BufReader::with_capacity(256 * 1024, file);
        let format = sniff(&mut r, path)?;
        self.unpack(&name, format, r)
    }

    /// Unpacks one package from a stream.
    pub fn unpack(
        &mut self,
        name: &str,
        format: Format,
        r: impl Read + Send + 'static,
    ) -> Result<PackageInfo> {
        let (r, count) = Counting::new(r);
        self.package = name.to_owned();
        self.compressed = Some(count);
        self.payload = 0;
        self.created.clear();
        let res = match format {
            Format::Deb => deb::unpack(r, self),
            Format::Rpm => rpm::unpack(r, self),
            Format::Tar => tarball::unpack(r, self),
        }
        .and_then(|info| {
            self.guard
                .recheck()
                .map_err(|(link, reason)| Error::Refused {
                    package: name.to_owned(),
                    entry: link.display().to_string(),
                    reason,
                })?;
            Ok(info)
        });
        if res.is_err() {
            self.rollback();
        }
        self.created.clear();
        res
    }

    fn rollback(&mut self) {
        for p in self.created.drain(..).rev() {
            let full = self.root.join(&p);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir(&full);
                }
                Ok(_) => {
                    let _ = fs::remove_file(&full);
                }
                Err(_) => {}
            }
        }
    }

    pub(crate) fn err_malformed(&self, what: impl Into<String>) -> Error {
        Error::Malformed {
            package: self.package.clone(),
            what: what.into(),
        }
    }

    pub(crate) fn err_read(&self, source: io::Error) -> Error {
        // Limits found inside a decoder surface as io errors carrying ours.
        Error::Read {
            package: self.package.clone(),
            source,
        }
    }

    pub(crate) fn package(&self) -> &str {
        &self.package
    }

    fn check_limits(&self) -> Result<()> {
        let lim = |what, limit| Error::Limit {
            package: self.package.clone(),
            what,
            limit,
        };
        if self.stats.entries > self.limits.max_entries {
            return Err(lim("entry count", self.limits.max_entries));
        }
        if self.stats.bytes > self.limits.max_total_bytes {
            return Err(lim("total size", self.limits.max_total_bytes));
        }
        if let Some(c) = &self.compressed {
            // A little slack so tiny archives of empty files are not flagged.
            let allowed = (c.load(Ordering::Relaxed) + (1 << 20)) * self.limits.max_ratio;
            if self.payload > allowed {
                return Err(lim("compression ratio", self.limits.max_ratio));
            }
        }
        Ok(())
    }

    /// Takes one archive entry; `data` holds the file's `size` bytes (read or skipped here).
    pub fn entry(&mut self, raw: &[u8], kind: Kind, mode: u32, data: &mut dyn Read) -> Result<()> {
        self.stats.entries += 1;
        let decision = self
            .guard
            .decide(raw, &kind, mode)
            .map_err(|reason| Error::Refused {
                package: self.package.clone(),
                entry: String::from_utf8_lossy(raw).into_owned(),
                reason,
            })?;
        let wanted = match &decision {
            Decision::Skip => false,
            Decision::Dir(_) => false, // directories are made on demand, below
            Decision::File(p) | Decision::Hardlink(p, _) | Decision::Symlink(p, _) => {
                self.selection.wants(p, &kind, self.arch_dir.as_deref())
            }
        };
        if !wanted {
            return self.drain(data);
        }
        let (pkg, name) = (
            self.package.clone(),
            String::from_utf8_lossy(raw).into_owned(),
        );
        let wr = move |source| Error::Write {
            package: pkg.clone(),
            entry: name.clone(),
            source,
        };
        match decision {
            Decision::File(p) => {
                self.make_parents(&p).map_err(&wr)?;
                let full = self.root.join(&p);
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o644 | (mode & 0o111))
                    .open(&full)
                    .map_err(&wr)?;
                self.created.push(p);
                self.stats.written += 1;
                loop {
                    let n = match data.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.err_read(e)),
                    };
                    self.payload += n as u64;
                    self.stats.bytes += n as u64;
                    self.check_limits()?;
                    f.write_all(&self.buf[..n]).map_err(&wr)?;
                }
            }
            Decision::Symlink(p, target) => {
                self.make_parents(&p).map_err(&wr)?;
                symlink(&target, self.root.join(&p)).map_err(&wr)?;
                self.created.push(p);
                self.stats.written += 1;
                self.drain(data)?;
            }
            Decision::Hardlink(p, target) => {
                self.make_parents(&p).map_err(&wr)?;
                let src = self.root.join(&target);
                // The target may have been left out by the selection: then there is nothing
                // to link to, and this entry is left out too.
                if src.exists() {
                    fs::hard_link(&src, self.root.join(&p)).map_err(&wr)?;
                    self.created.push(p);
                    self.stats.written += 1;
                }
                self.drain(data)?;
            }
            Decision::Dir(_) | Decision::Skip => unreachable!(),
        }
        self.check_limits()
    }

    /// Hard link by a format that names the link's target only later (cpio): `path` gets the
    /// contents of the already-written `target`.
    pub(crate) fn link_existing(&mut self, path: &[u8], target: &[u8]) -> Result<()> {
        self.entry(
            path,
            Kind::Hardlink(target.to_vec()),
            0o644,
            &mut io::empty(),
        )
    }

    fn drain(&mut self, data: &mut dyn Read) -> Result<()> {
        loop {
            match data.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.payload += n as u64;
                    self.check_limits()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err_read(e)),
            }
        }
    }

    /// Creates missing parent directories (never through a link: the guard refused those).
    fn make_parents(&mut self, p: &Path) -> io::Result<()> {
        let Some(parent) = p.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.root.join(parent).is_dir() {
            return Ok(());
        }
        let mut cur = PathBuf::new();
        for c in parent.components() {
            cur.push(c);
            let full = self.root.join(&cur);
            match fs::create_dir(&full) {
                Ok(()) => {
                    fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
                    self.created.push(cur.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !fs::symlink_metadata(&full)?.is_dir() {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("`{}` exists and is not a directory", cur.display()),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Container format of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Deb,
    Rpm,
    Tar,
}

/// What a package's own metadata says about it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PackageInfo {
    pub format: Format,
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub arch: Option<String>,
    pub depends: Option<String>,
    /// Number of files the package header lists (RPM).
    pub files: Option<usize>,
}

/// Tells the format from the first bytes (tarballs may be compressed).
pub fn sniff(r: &mut impl io::BufRead, path: &Path) -> Result<Format> {
    let head = r.fill_buf().map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    if head.starts_with(b"!<arch>\n") {
        Ok(Format::Deb)
    } else if head.starts_with(&[0xed, 0xab, 0xee, 0xdb]) {
        Ok(Format::Rpm)
    } else if head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || (head.len() >= 262 && &head[257..262] == b"ustar")
    {
        Ok(Format::Tar)
    } else {
        Err(Error::UnknownFormat(path.to_owned()))
    }
}

/// A package's own architecture (`amd64`, `x86_64`, `all`, ...) from its metadata, reading
/// only the first few kilobytes; `None` for tarballs or unreadable files.
pub fn peek_arch(path: &Path) -> Option<String> {
    let f = fs::File::open(path).ok()?;
    let mut r = io::BufReader::new(f);
    match sniff(&mut r, path).ok()? {
        Format::Deb => deb::peek_control(r).and_then(|i| i.arch),
        Format::Rpm => rpm::peek_header(r).and_then(|i| i.arch),
        Format::Tar => None,
    }
}

/// Why a tree could not be put in place by [`unpack_into_place`].
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("`{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Unpack(#[from] Error),
}

/// Unpacks `files` whole into `root`, which appears complete or not at all: unpacked into a
/// temporary sibling, marked with `.complete` holding `marker`, then renamed into place; a
/// `root` another process completed first is accepted.
pub fn unpack_into_place(files: &[PathBuf], root: &Path, marker: &str) -> Result<(), PlaceError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PlaceError::Io { path, source }
    };
    let parent = root.parent().expect("a root has a parent");
    fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let staged = tmp.path().join("root");
    unpack_all(files, &staged, Selection::Everything, Limits::default())?;
    fs::write(staged.join(".complete"), marker).map_err(io(&staged))?;
    match fs::rename(&staged, root) {
        Ok(()) => Ok(()),
        // Someone else finished first.
        Err(_) if root.join(".complete").is_file() => Ok(()),
        Err(e) => Err(io(root)(e)),
    }
}

/// Unpacks several packages into one new root. On failure the root is removed entirely.
pub fn unpack_all(
    packages: &[PathBuf],
    root: &Path,
    selection: Selection,
    limits: Limits,
) -> Result<(Vec<PackageInfo>, Stats)> {
    let mut u = Unpacker::new(root, selection, limits)?;
    if selection == Selection::ProbeBuild {
        let dir = packages
            .iter()
            .filter_map(|p| peek_arch(p))
            .find_map(|a| crate::kernel::Arch::parse(&a))
            .map(|a| a.kernel_dir());
        u.set_arch_dir(dir);
    }
    let mut infos = Vec::new();
    for p in packages {
        match u.unpack_file(p) {
            Ok(i) => infos.push(i),
            Err(e) => {
                let _ = fs::remove_dir_all(root);
                return Err(e);
            }
        }
    }
    Ok((infos, u.stats()))
}

/// Header inputs made ready to read: packages unpacked into a private temporary root (removed
/// on drop), or one directory used in place.
pub struct Staged {
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    pub packages: Vec<PackageInfo>,
    pub stats: Stats,
}

impl Staged {
    /// `scratch` is where the temporary root goes (default: `$TMPDIR`).
    pub fn new(inputs: &[PathBuf], selection: Selection, scratch: Option<&Path>) -> Result<Staged> {
        if let [dir] = inputs {
            if dir.is_dir() {
                return Ok(Staged {
                    _tmp: None,
                    root: dir.clone(),
                    packages: Vec::new(),
                    stats: Stats::default(),
                });
            }
        }
        if let Some(d) = inputs.iter().find(|p| p.is_dir()) {
            return Err(Error::Malformed {
                package: d.display().to_string(),
                what: "a directory must be the only input (give packages, or one unpacked tree)"
                    .into(),
            });
        }
        let mut b = tempfile::Builder::new();
        b.prefix("probeforge-");
        let tmp = match scratch {
            Some(s) => b.tempdir_in(s),
            None => b.tempdir(),
        }
        .map_err(|source| Error::Write {
            package: String::new(),
            entry: scratch
                .map(|s| s.display().to_string())
                .unwrap_or_else(|| std::env::temp_dir().display().to_string()),
            source,
        })?;
        let root = tmp.path().join("root");
        let (packages, stats) = unpack_all(inputs, &root, selection, Limits::default())?;
        check_headers(inputs, &packages, &root)?;
        Ok(Staged {
            _tmp: Some(tmp),
            root,
            packages,
            stats,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// How a header input is named to people: its file name, and the package its metadata names
/// when the file name does not say (a download cache names files by digest).
fn label(input: &Path, info: &PackageInfo) -> String {
    let file = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match (&info.name, &info.version) {
        (Some(n), Some(v)) if !file.starts_with(n.as_str()) => format!("{file} (package {n} {v})"),
        (Some(n), None) if !file.starts_with(n.as_str()) => format!("{file} (package {n})"),
        _ => file,
    }
}

/// Package names of a deb822 `Depends` field (first alternative of each, without versions
/// or architecture qualifiers).
fn depends_names(depends: &str) -> Vec<&str> {
    depends
        .split(',')
        .filter_map(|d| {
            let first = d.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Whether unpacked header packages hold a kernel whose srctree is there too. The failures
/// name the packages given (by file name, never the private root they were unpacked into),
/// and a flavour package whose srctree package is missing names that package from its own
/// `Depends`.
fn check_headers(inputs: &[PathBuf], packages: &[PackageInfo], root: &Path) -> Result<()> {
    let files: Vec<String> = inputs
        .iter()
        .zip(packages)
        .map(|(i, p)| label(i, p))
        .collect();
    let in_root = |p: &Path| Path::new("/").join(p.strip_prefix(root).unwrap_or(p));
    let objtrees = crate::kernel::find_objtrees(root);
    if objtrees.is_empty() {
        let why = match crate::kernel::find_srctrees(root).first() {
            Some(s) => format!(
                "`{}` is a kernel srctree without its objtree (include/generated/utsrelease.h), \
                 which the headers package of the kernel's flavour holds",
                in_root(s).display()
            ),
            None if files.len() == 1 => "it has no include/generated/utsrelease.h".to_owned(),
            None => "none of them has include/generated/utsrelease.h".to_owned(),
        };
        return Err(Error::NoKernelHeaders { files, why });
    }
    let given: Vec<&str> = packages.iter().filter_map(|p| p.name.as_deref()).collect();
    for o in &objtrees {
        let Err(e) = crate::kernel::find_srctree(root, o) else {
            continue;
        };
        let includes = crate::kernel::makefile_includes(o);
        // The srctree the Makefile includes is, on Debian, the directory of the same name as
        // its package (`/usr/src/linux-headers-R-common/Makefile`).
        let named_dir = includes.iter().find_map(|i| {
            let dir = Path::new(i).parent()?;
            Some((
                dir.display().to_string(),
                dir.file_name()?.to_str()?.to_owned(),
            ))
        });
        let missing = inputs.iter().zip(packages).find_map(|(input, p)| {
            let deps = depends_names(p.depends.as_deref()?);
            let dep = deps
                .iter()
                .filter(|d| !given.contains(d))
                .find(|d| named_dir.as_ref().is_some_and(|(_, n)| n == *d))
                .or_else(|| {
                    deps.iter()
                        .filter(|d| !given.contains(d))
                        .find(|d| d.contains("headers") && d.ends_with("-common"))
                })?;
            Some((label(input, p), dep.to_string()))
        });
        if let Some((file, missing)) = missing {
            let srctree = named_dir.map_or_else(|| format!("/usr/src/{missing}"), |(d, _)| d);
            return Err(Error::MissingPackage {
                file,
                missing,
                srctree,
            });
        }
        // Say where the objtree is inside the packages, not in the private root.
        let source = match e {
            crate::kernel::Error::NoSrctree { named, .. } => crate::kernel::Error::NoSrctree {
                objtree: in_root(o),
                named,
            },
            e => e,
        };
        return Err(Error::Kernel {
            files,
            source: Box::new(source),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_builds_keep_the_top_makefile_of_every_layout() {
        let wants = |p: &str| Selection::ProbeBuild.wants(Path::new(p), &Kind::File, None);
        assert!(wants("usr/src/linux-headers-6.1.0-50-common/Makefile"));
        assert!(wants("usr/src/kernels/6.1.176-50.amzn2.x86_64/Makefile"));
        assert!(wants("usr/lib/modules/6.8.1-arch1-1/build/Makefile"));
        assert!(wants(
            "aws-k8s-1.33-x86_64-kmod-kit-v1.20.0/kernel-devel/Makefile"
        ));
        assert!(!wants(
            "usr/lib/modules/6.8.1-arch1-1/build/drivers/Makefile"
        ));
        assert!(!wants("usr/lib/modules/6.8.1-arch1-1/build/vmlinux"));
    }

    #[test]
    fn depends_names_take_first_alternatives_without_versions() {
        let d = "linux-headers-6.12.118+deb13-common (= 6.12.118-1), linux-kbuild-6.12.118+deb13 (= 6.12.118-1), gcc-14 | clang:any";
        assert_eq!(
            depends_names(d),
            [
                "linux-headers-6.12.118+deb13-common",
                "linux-kbuild-6.12.118+deb13",
                "gcc-14"
            ]
        );
        assert!(depends_names("").is_empty());
    }

    #[test]
    fn inputs_are_named_by_file_and_by_package_when_the_file_does_not_say() {
        let info = PackageInfo {
            name: Some("linux-kbuild-6.1".into()),
            version: Some("6.1.76-1".into()),
            ..Default::default()
        };
        assert_eq!(
            label(Path::new("/x/linux-kbuild-6.1_6.1.76-1_amd64.deb"), &info),
            "linux-kbuild-6.1_6.1.76-1_amd64.deb"
        );
        assert_eq!(
            label(Path::new("/cache/sha256/c8/c86cba92"), &info),
            "c86cba92 (package linux-kbuild-6.1 6.1.76-1)"
        );
        assert_eq!(
            label(Path::new("/x/h.tar.gz"), &PackageInfo::default()),
            "h.tar.gz"
        );
    }
}

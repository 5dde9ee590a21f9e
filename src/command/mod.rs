//! The commands as library functions: what `probeforge build`, `build-all`, `verify`, `check`,
//! `fetch`, `list-kernels` and `bazel` do, callable by a CI wrapper or a Bazel rule with plain option
//! structs (no command-line types) and a [`Reporter`] for progress.
//!
//! Each command settles its choices once through [`crate::session`] (client, catalog, mirrors,
//! the kernel, the driver) and [`toolchain::resolve`], then runs the stages. A command never
//! prints: what a person may want to read goes to the reporter (`note`, `warn`, typed phases),
//! what a machine reads comes back in the result, and the binary renders both.

pub mod bazel;
pub mod build;
pub mod build_all;
pub mod check;
pub mod driverkit;
pub mod merge;
pub mod query;
pub mod site;
pub mod toolchain;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

use crate::report::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something that is not there or cannot be: exit code 2 in the CLI.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Session(Box<crate::session::Error>),
    #[error(transparent)]
    Repo(#[from] crate::repo::Error),
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    #[error(transparent)]
    Driver(Box<crate::driver::Error>),
    #[error(transparent)]
    Pipeline(Box<crate::pipeline::Error>),
    #[error(transparent)]
    Toolchain(#[from] crate::toolchain::Error),
    #[error(transparent)]
    ToolchainFetch(Box<crate::toolchain::FetchError>),
    #[error(transparent)]
    Verify(#[from] crate::verify::Error),
    #[error(transparent)]
    Userspace(#[from] crate::verify::userspace::Error),
    #[error("the driver's event tables, for --verify")]
    Tables(#[source] Box<crate::verify::events::Error>),
    #[error(transparent)]
    Check(#[from] crate::check::Error),
    #[error(transparent)]
    Publish(#[from] crate::publish::Error),
    #[error(transparent)]
    Merge(Box<crate::merge::Error>),
    #[error(transparent)]
    Vanilla(Box<crate::vanilla::Error>),
    #[error(transparent)]
    Site(#[from] crate::site::Error),
    #[error(transparent)]
    Trust(#[from] crate::trust::Error),
    #[error(transparent)]
    Extract(#[from] crate::extract::Error),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::Error),
    #[error(transparent)]
    Kmod(Box<crate::kmod::Error>),
    #[error(transparent)]
    Module(#[from] crate::kmod::ValidateError),
    #[error("module signing")]
    ModuleSign(#[from] crate::kmod::sign::SignError),
    #[error("patch directory `{}`", path.display())]
    Patches {
        path: PathBuf,
        #[source]
        source: crate::patch::Error,
    },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is already there with other bytes (sha256 {old}); this build's are sha256 {new}: not replaced (--force replaces it)", path.display())]
    WouldReplace {
        path: PathBuf,
        old: String,
        new: String,
    },
    #[error("no kernel image for `{release}` in `{target}`")]
    NoImage {
        release: String,
        target: String,
        #[source]
        source: Box<Error>,
    },
}

// The larger errors are boxed: a command's `Result` stays small.
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Error {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}
boxed_from!(
    Session: crate::session::Error,
    Driver: crate::driver::Error,
    Pipeline: crate::pipeline::Error,
    ToolchainFetch: crate::toolchain::FetchError,
    Kmod: crate::kmod::Error
);

impl Error {
    /// The driver's event tables could not be had, for `--verify`.
    pub fn tables(e: crate::verify::events::Error) -> Error {
        Error::Tables(Box::new(e))
    }

    /// Whether the fault is in what the user asked for (usage or environment: exit 2): an
    /// unknown target, kernel or file, keys that cannot be read, something `--offline` cannot
    /// have because the cache lacks it. The contract is the README's "Exit codes".
    pub fn is_usage(&self) -> bool {
        let top = match self {
            Error::Usage(_) => true,
            Error::Session(e) => match &**e {
                crate::session::Error::Repo(r) => repo_usage(r),
                e => e.is_usage(),
            },
            Error::Repo(e) => repo_usage(e),
            Error::Http(e) => http_usage(e),
            // What was given is not what it must be, or the machine lacks a tool.
            Error::Vanilla(e) => !matches!(
                **e,
                crate::vanilla::Error::Make { .. } | crate::vanilla::Error::WrongRelease { .. }
            ),
            _ => false,
        };
        // Deeper causes (a kernel's packages not in the cache under `--offline`, wrapped in
        // the stage that wanted them) decide as well.
        let mut cause = std::error::Error::source(self);
        let mut deep = false;
        while let Some(c) = cause {
            deep |= c
                .downcast_ref::<crate::repo::Error>()
                .is_some_and(repo_usage)
                || c.downcast_ref::<crate::http::Error>()
                    .is_some_and(http_usage);
            cause = c.source();
        }
        top || deep
    }

    fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Read {
            path: path.to_owned(),
            source,
        }
    }

    fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Write {
            path: path.to_owned(),
            source,
        }
    }
}

/// A repository error that is the request's fault.
fn repo_usage(e: &crate::repo::Error) -> bool {
    use crate::repo::Error as E;
    match e {
        E::UnknownTarget(_) | E::NoSuchKernel { .. } | E::Keys { .. } => true,
        E::Fetch { source, .. } => http_usage(source),
        _ => false,
    }
}

/// An HTTP error that is the request's fault: `--offline` asked for what the cache lacks.
fn http_usage(e: &crate::http::Error) -> bool {
    matches!(e, crate::http::Error::Offline { .. })
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Input files named by the user must exist, and a file must not be empty: a missing or empty
/// one is a usage error naming it.
pub fn need_files<'a>(what: &str, paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    for p in paths {
        crate::session::need_files(what, [p])?;
        if std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(Error::Usage(format!("{what} `{}` is empty", p.display())));
        }
    }
    Ok(())
}

/// `--only`'s regular expression; one that does not parse is a usage error on one line.
pub fn only_regex(re: &str) -> Result<regex::Regex> {
    regex::Regex::new(re).map_err(|e| {
        // regex's message draws the pattern over several lines; its last line says why.
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let why = why.trim().trim_start_matches("error: ");
        Error::Usage(format!("--only `{re}` is not a regular expression: {why}"))
    })
}

/// An output directory must be writable before any work starts: a file is made and removed
/// in it, or, while it does not exist yet, in the nearest directory above it that does (the
/// directory itself is made by whatever writes into it, so a request that fails later leaves
/// nothing behind). One that cannot be written is a usage error naming it.
pub fn writable_dir(what: &str, dir: &std::path::Path) -> Result<()> {
    let refused = |e: std::io::Error| Error::Usage(format!("{what} `{}`: {e}", dir.display()));
    let mut existing = dir;
    while !existing.exists() {
        existing = match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
    }
    if !existing.is_dir() {
        return Err(Error::Usage(format!(
            "{what} `{}` is not a directory{}",
            dir.display(),
            match existing == dir {
                true => String::new(),
                false => format!(" (`{}` is a file)", existing.display()),
            }
        )));
    }
    tempfile::Builder::new()
        .prefix(".probeforge-write-test-")
        .tempfile_in(existing)
        .map_err(refused)?;
    Ok(())
}

/// The number of kernels compiled at once when none is given: every CPU.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The error and its causes on one line, as the batch records a kernel's failure.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// Says which newer kernels `latest` passed over because the mirror does not serve them.
fn report_passed_over(passed_over: &[crate::repo::Error], rep: &dyn Reporter) {
    let Some(first) = passed_over.first() else {
        return;
    };
    rep.warn(&format!(
        "`latest` passed over {} that this mirror does not serve; the newest: {first}{}",
        crate::report::count(passed_over.len(), "newer kernel"),
        if passed_over.len() > 1 {
            " (-v names each)"
        } else {
            ""
        }
    ));
    for e in &passed_over[1..] {
        tracing::info!("passed over: {e}");
    }
}

/// Says which kernel a name other than its `uname -r` resolved to.
fn report_named_as(k: &crate::session::Kernel, rep: &dyn Reporter) {
    if let Some((name, form)) = &k.named_as {
        rep.note(&format!(
            "`{name}` ({form}) is kernel {} of `{}`",
            k.record.release, k.record.target
        ));
    }
}

/// An architecture as users spell it; anything else is a usage error.
pub fn parse_arch(s: Option<&str>) -> Result<Option<crate::kernel::Arch>> {
    s.map(|a| {
        crate::kernel::Arch::parse(a).ok_or_else(|| {
            Error::Usage(format!(
                "unknown architecture `{a}` (x86_64, aarch64, s390x, ppc64le)"
            ))
        })
    })
    .transpose()
}

/// One architecture, or both when none is named.
pub fn arches(a: Option<&str>) -> Result<Vec<crate::kernel::Arch>> {
    use crate::kernel::Arch;
    Ok(match parse_arch(a)? {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    })
}

/// A local repository, signing every `SHA256SUMS` it writes when given a key.
pub fn local_repo(
    root: &std::path::Path,
    sign_key: Option<&std::path::Path>,
    passphrase: &str,
) -> Result<crate::publish::LocalRepo> {
    let repo = crate::publish::LocalRepo::new(root);
    let Some(k) = sign_key else {
        return Ok(repo);
    };
    need_files("signing key", [&k.to_path_buf()])?;
    let bytes = std::fs::read(k).map_err(Error::read(k))?;
    let key = crate::trust::SigningKey::parse(&bytes, &k.display().to_string(), passphrase)
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(repo.with_signer(key))
}

/// The kernels of a list file (`--from`): a plan (`build-all --plan --json`, which keeps the
/// listing's digests and signature state) or a kernel-crawler list (no digests), of `arches`.
pub fn read_list(
    f: &std::path::Path,
    arches: &[crate::kernel::Arch],
) -> Result<Vec<crate::repo::KernelRecord>> {
    #[derive(serde::Deserialize)]
    struct PlanFile {
        kernels: Vec<crate::repo::KernelRecord>,
    }
    let text = std::fs::read_to_string(f).map_err(Error::read(f))?;
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let is_plan = value
        .as_ref()
        .and_then(|v| v.get("format")?.as_str())
        .is_some_and(|t| t == build_all::PLAN_FORMAT);
    let mut kernels = match (is_plan, value) {
        (true, Some(v)) => serde_json::from_value::<PlanFile>(v)
            .map(|p| p.kernels)
            .map_err(|e| Error::Usage(format!("plan `{}`: {e}", f.display())))?,
        _ => crate::repo::crawler::read(&text, arches[0])
            .map_err(|e| Error::Usage(format!("`{}`: {e}", f.display())))?,
    };
    kernels.retain(|k| arches.contains(&k.arch));
    Ok(kernels)
}

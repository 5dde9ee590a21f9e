//! `probeforge bazel`: writes a Bazel package (WORKSPACE mode, as Bazel 4 and later read it)
//! that builds the probes of many kernels hermetically, so `bazel build` builds any subset, a
//! remote executor spreads the work and a remote cache shares it.
//!
//! Every input is pinned by sha256: one `http_file` per header package and one for the driver
//! source (or the given file, copied in), the pinned toolchain as a repository rule, and this
//! very binary under `tools/`. Each probe is a genrule running `probeforge build --offline`
//! from those files only, in a sandbox with no network.
//!
//! The package's bytes depend only on the inputs: sorted, no time stamps, no path of this
//! machine (the URLs come from the session's mirrors). This module never prints and never runs
//! Bazel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::kernel::Arch;
use crate::repo::{KernelRecord, Lister};
use crate::report::{Phase, Reporter};
use crate::session::{self, Session};
use crate::toolchain::Manifest;

use super::{need_files, Error, Result};

/// What `probeforge bazel` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Catalog targets whose kernels the package builds.
    pub targets: Vec<String>,
    /// A plan file (`build-all --plan --json`: digests kept) or a kernel-crawler list (no
    /// digests: each package is downloaded once to pin it).
    pub from: Option<PathBuf>,
    /// Only kernel releases matching this regular expression.
    pub only: Option<String>,
    /// Only this architecture (default: every one listed).
    pub arch: Option<Arch>,
    /// The driver version (default: the source's own when known, else the default driver).
    pub driver_version: Option<String>,
    /// A driver source file, copied into the package (default: the known copy of the version).
    pub driver_source: Option<PathBuf>,
    /// The pinned toolchain's name (see [`Options::default_toolchain`]).
    pub toolchain: String,
    /// The package directory (created; the files it writes are replaced).
    pub output: PathBuf,
}

impl Options {
    /// The pinned toolchain a package builds with when none is named: the one for this
    /// machine's architecture, if one is shipped.
    pub fn default_toolchain() -> Option<String> {
        Manifest::for_host().map(|m| m.name)
    }
}

/// What was written.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub package: PathBuf,
    /// One Bazel target per kernel, in the package's order.
    pub kernels: Vec<KernelTarget>,
    /// Every file the WORKSPACE downloads, by URL: what a `--distdir` must hold (named by the
    /// URL's last segment) for Bazel to build with no network.
    pub downloads: Vec<Download>,
    /// Distinct header packages (`http_file`s).
    pub header_packages: usize,
    /// Header packages whose digest no listing gave, downloaded once here to pin it.
    pub pinned_by_download: usize,
    /// The driver source's label in the package, and its version when known.
    pub driver: String,
    pub driver_version: Option<String>,
    pub toolchain: String,
    /// False when a target could not be listed (warned): its kernels are missing.
    pub complete: bool,
}

/// One kernel's genrule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTarget {
    /// The Bazel target (`//:<name>`).
    pub name: String,
    pub release: String,
    pub arch: Arch,
    /// The probe it builds: Falco's file name (below `<arch>/` when two arches share it).
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Download {
    pub url: String,
    pub sha256: String,
}

/// Writes the package. Kernels come from `targets` (signed listings, digests known) and
/// `from` (a kernel-crawler list, digests pinned by downloading).
pub fn run(o: &Options, net: &session::Options, rep: &dyn Reporter) -> Result<Written> {
    need_files("kernel list", &o.from)?;
    need_files("driver source", &o.driver_source)?;
    super::writable_dir("package directory", &o.output)?;
    if o.targets.is_empty() && o.from.is_none() {
        return Err(Error::Usage(
            "give catalog targets or --from a kernel-crawler list".into(),
        ));
    }
    let only = o.only.as_deref().map(super::only_regex).transpose()?;
    let m = Manifest::named(&o.toolchain).ok_or_else(|| {
        let names: Vec<String> = Manifest::embedded().into_iter().map(|m| m.name).collect();
        Error::Usage(format!(
            "unknown toolchain `{}` (pinned: {})",
            o.toolchain,
            names.join(", ")
        ))
    })?;
    let s = Session::open(net)?;

    let (mut kernels, complete) = listed_kernels(o, &s, rep)?;
    if let Some(re) = &only {
        kernels.retain(|k| re.is_match(&k.release) || re.is_match(&k.file_release()));
    }
    if kernels.is_empty() {
        return Err(Error::Usage(
            "no kernel to build: the list is empty after --only and --arch".into(),
        ));
    }
    let pinned_by_download = pin_digests(&mut kernels, &s, rep)?;

    let (driver, driver_version, driver_file) = driver_input(o, &s)?;
    let mirror = s.mirrors.resolve(&s.catalog, &m.mirror)?;
    let toolchain = m
        .packages
        .iter()
        .map(|p| Download {
            url: format!("{mirror}/{}", p.filename),
            sha256: p.sha256.clone(),
        })
        .collect::<BTreeSet<_>>();
    let plan = Plan::new(&kernels, driver, driver_version, &m, toolchain)?;

    write_package(&o.output, &plan, driver_file.as_ref())?;
    let mut downloads: BTreeSet<Download> = plan.toolchain.clone();
    downloads.extend(plan.headers.iter().map(HttpFile::download));
    if let DriverInput::Http(f) = &plan.driver {
        downloads.insert(f.download());
    }
    Ok(Written {
        package: o.output.clone(),
        kernels: plan
            .probes
            .iter()
            .map(|p| KernelTarget {
                name: p.name.clone(),
                release: p.release.clone(),
                arch: p.arch,
                file: p.out.clone(),
            })
            .collect(),
        downloads: downloads.into_iter().collect(),
        header_packages: plan.headers.len(),
        pinned_by_download,
        driver: plan.driver.label(),
        driver_version: plan.driver_version.clone(),
        toolchain: m.name,
        complete,
    })
}

/// The kernels asked for, as a probe build reads them (no kbuild package), one per
/// (arch, target id, release, kernel version), sorted.
fn listed_kernels(
    o: &Options,
    s: &Session,
    rep: &dyn Reporter,
) -> Result<(Vec<KernelRecord>, bool)> {
    let arches = match o.arch {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    };
    let (mut all, failed) = super::query::list_targets(s, &o.targets, &arches, rep)?;
    if let Some(f) = &o.from {
        all.extend(super::read_list(f, &arches)?);
    }
    let mut seen = BTreeMap::new();
    for k in all {
        let key = (
            k.arch,
            k.target_id.clone(),
            k.release.clone(),
            k.kernel_version.clone(),
        );
        seen.entry(key).or_insert_with(|| Lister::for_build(&k));
    }
    Ok((seen.into_values().collect(), !failed))
}

/// Gives every package a digest: a kernel-crawler list carries none, so each such package is
/// downloaded once (cached by URL) and its digest pinned, which is only as good as that
/// download: said in a warning. Returns how many were pinned so.
fn pin_digests(kernels: &mut [KernelRecord], s: &Session, rep: &dyn Reporter) -> Result<usize> {
    let mut pinned = BTreeMap::new();
    for k in kernels.iter_mut() {
        for p in k.packages.iter_mut().filter(|p| p.known_sha256().is_none()) {
            if let Some(d) = pinned.get(&p.url) {
                p.sha256 = String::clone(d);
                continue;
            }
            rep.phase(&p.name, Phase::Download);
            let got = s.client.fetch_unverified(&p.url);
            rep.done(&p.name);
            let (_, digest) = got.map_err(|source| {
                Error::Repo(crate::repo::Error::Fetch {
                    what: format!("kernel `{}`: package `{}`", k.release, p.name),
                    source,
                })
            })?;
            tracing::info!("pinned `{}` as sha256 {digest}", p.url);
            pinned.insert(p.url.clone(), digest.clone());
            p.sha256 = digest;
        }
    }
    if !pinned.is_empty() {
        rep.warn(&format!(
            "{} header package(s) of the kernel list carry no digest: pinned to the sha256 of \
             the copy downloaded now (-v names each), not to a signed listing",
            pinned.len()
        ));
    }
    Ok(pinned.len())
}

/// The driver: the given file (copied into `driver/`), or the known copy of the version by
/// URL and digest. Returns the input, its version when known, and the file to copy.
fn driver_input(
    o: &Options,
    s: &Session,
) -> Result<(DriverInput, Option<String>, Option<PathBuf>)> {
    if let Some(f) = &o.driver_source {
        if !f.is_file() {
            return Err(Error::Usage(format!(
                "driver source `{}` must be a file (a tarball or a package) to go into the package",
                f.display()
            )));
        }
        let name = file_name(&f.to_string_lossy()).to_owned();
        check_word("driver source file name", &name)?;
        let version = match &o.driver_version {
            Some(v) => Some(v.clone()),
            None => {
                let digest = crate::base::sha256_file(f).map_err(Error::read(f))?;
                crate::driver::SourceCatalog::embedded().version_of_digest(&digest)
            }
        };
        return Ok((DriverInput::File(name), version, Some(f.clone())));
    }
    let cat = crate::driver::SourceCatalog::embedded();
    let version = o
        .driver_version
        .clone()
        .unwrap_or_else(|| cat.default_version.clone());
    let mut sources: Vec<_> = cat
        .known
        .iter()
        .filter(|k| k.version == version)
        .flat_map(|k| &k.sources)
        .collect();
    // The mirror's copy before a fixed URL, as `build` takes them.
    sources.sort_by_key(|s| s.url.is_some());
    let url = sources.iter().find_map(|src| {
        let url = match (&src.url, &src.mirror, &src.path) {
            (Some(u), _, _) => u.clone(),
            (None, Some(m), Some(p)) => format!("{}/{p}", s.mirrors.resolve(&s.catalog, m).ok()?),
            _ => return None,
        };
        Some((url, src.sha256.clone()))
    });
    let Some((url, sha256)) = url else {
        return Err(Error::Usage(format!(
            "driver `{version}` has no copy known by digest: give its source with --driver-source FILE"
        )));
    };
    let f = HttpFile {
        name: "driver_source".into(),
        url,
        sha256,
    };
    Ok((DriverInput::Http(f), Some(version), None))
}

/// One file the WORKSPACE downloads.
#[derive(Debug, Clone)]
struct HttpFile {
    /// The external repository's name.
    name: String,
    url: String,
    sha256: String,
}

impl HttpFile {
    fn label(&self) -> String {
        format!("@{}//file", self.name)
    }
    fn download(&self) -> Download {
        Download {
            url: self.url.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum DriverInput {
    Http(HttpFile),
    /// A file name under `driver/`.
    File(String),
}

impl DriverInput {
    fn label(&self) -> String {
        match self {
            DriverInput::Http(f) => f.label(),
            DriverInput::File(name) => format!("//:driver/{name}"),
        }
    }
}

/// One probe's genrule.
#[derive(Debug, Clone)]
struct Probe {
    name: String,
    out: String,
    arch: Arch,
    release: String,
    kernel_version: String,
    target_id: String,
    headers: Vec<String>,
}

/// Everything the package says, settled: rendering it is pure.
#[derive(Debug, Clone)]
struct Plan {
    headers: Vec<HttpFile>,
    driver: DriverInput,
    driver_version: Option<String>,
    toolchain_name: String,
    toolchain_repo: String,
    toolchain_llvm: String,
    toolchain: BTreeSet<Download>,
    probes: Vec<Probe>,
}

impl Plan {
    fn new(
        kernels: &[KernelRecord],
        driver: DriverInput,
        driver_version: Option<String>,
        m: &Manifest,
        toolchain: BTreeSet<Download>,
    ) -> Result<Plan> {
        if let Some(v) = &driver_version {
            check_word("driver version", v)?;
        }
        // Distinct header packages by URL, named from their file names.
        let mut by_url: BTreeMap<&str, &str> = BTreeMap::new();
        for p in kernels.iter().flat_map(|k| &k.packages) {
            check_url(&p.url)?;
            if let Some(other) = by_url.insert(&p.url, &p.sha256) {
                if other != p.sha256 {
                    return Err(Error::Usage(format!(
                        "`{}` is listed with two digests ({other}, {})",
                        p.url, p.sha256
                    )));
                }
            }
        }
        let names = unique(
            by_url
                .keys()
                .map(|u| repo_name(strip_extension(file_name(u))))
                .collect(),
        );
        let headers: Vec<HttpFile> = by_url
            .iter()
            .zip(names)
            .map(|((url, sha), name)| HttpFile {
                name,
                url: url.to_string(),
                sha256: sha.to_string(),
            })
            .collect();
        let label: BTreeMap<&str, String> = headers
            .iter()
            .map(|h| (h.url.as_str(), h.label()))
            .collect();
        for k in kernels {
            check_word("kernel release", &k.release)?;
            check_word("kernel version", &k.kernel_version)?;
            check_word("target id", &k.target_id)?;
        }
        // A release names its arch on most distros; where two arches share one, the names
        // and files of both say which.
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for k in kernels {
            *count.entry(&k.release).or_default() += 1;
        }
        let shared = |k: &KernelRecord| count[k.release.as_str()] > 1;
        let names = unique(
            kernels
                .iter()
                .map(|k| match shared(k) {
                    true => format!("{}_{}", k.release, k.arch.uname_m()),
                    false => k.release.clone(),
                })
                .collect(),
        );
        let probes = kernels
            .iter()
            .zip(names)
            .map(|(k, name)| {
                let file = crate::pipeline::Driver::Ebpf.file_name(
                    &k.target_id,
                    &k.file_release(),
                    &k.kernel_version,
                );
                let mut headers: Vec<String> = k
                    .packages
                    .iter()
                    .map(|p| label[p.url.as_str()].clone())
                    .collect();
                headers.sort();
                headers.dedup();
                Probe {
                    name,
                    out: match shared(k) {
                        true => format!("{}/{file}", k.arch.uname_m()),
                        false => file,
                    },
                    arch: k.arch,
                    release: k.release.clone(),
                    kernel_version: k.kernel_version.clone(),
                    target_id: k.target_id.clone(),
                    headers,
                }
            })
            .collect();
        Ok(Plan {
            headers,
            driver,
            driver_version,
            toolchain_name: m.name.clone(),
            toolchain_repo: repo_name(&m.name),
            toolchain_llvm: m.llvm_version.clone(),
            toolchain,
            probes,
        })
    }

    fn workspace(&self) -> String {
        let mut w = String::new();
        w.push_str(
            "# Generated by `probeforge bazel`: every input of every probe, pinned by sha256.\n\
             # With no network: bazel build //:all --distdir=DIR, DIR holding each file named by\n\
             # the last segment of its URL.\n\
             workspace(name = \"falco_drivers\")\n\n\
             load(\"@bazel_tools//tools/build_defs/repo:http.bzl\", \"http_file\")\n\
             load(\"//:probeforge.bzl\", \"probeforge_toolchain\")\n\n",
        );
        let _ = writeln!(
            w,
            "# The pinned toolchain `{}` (LLVM {}): its packages, unpacked by each action.",
            self.toolchain_name, self.toolchain_llvm
        );
        let _ = writeln!(
            w,
            "probeforge_toolchain(\n    name = {},",
            quote(&self.toolchain_repo)
        );
        w.push_str("    packages = {\n");
        for d in &self.toolchain {
            let _ = writeln!(w, "        {}: {},", quote(&d.url), quote(&d.sha256));
        }
        w.push_str("    },\n)\n");
        if let DriverInput::Http(f) = &self.driver {
            let _ = writeln!(
                w,
                "\n# The driver source{}.",
                self.driver_version
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            );
            http_file(&mut w, f);
        }
        w.push_str("\n# Kernel header packages.\n");
        for (i, h) in self.headers.iter().enumerate() {
            if i > 0 {
                w.push('\n');
            }
            http_file(&mut w, h);
        }
        w
    }

    fn build(&self) -> String {
        let mut w = String::new();
        let _ = writeln!(
            w,
            "# Generated by `probeforge bazel`: Falco's eBPF probe for {} kernel(s), one genrule each,\n\
             # run with no network from pinned inputs only.\n\
             #   bazel build //:all                 every probe\n\
             #   bazel build //:{}   one kernel",
            self.probes.len(),
            self.probes[0].name
        );
        w.push_str(
            "\nload(\"//:probeforge.bzl\", \"falco_probe\")\n\n\
             package(default_visibility = [\"//visibility:public\"])\n\n\
             exports_files([\"tools/probeforge\"])\n\n",
        );
        let _ = writeln!(w, "DRIVER = {}\n", quote(&self.driver.label()));
        let _ = writeln!(
            w,
            "DRIVER_VERSION = {}\n",
            self.driver_version.as_deref().map_or("None".into(), quote)
        );
        let _ = writeln!(w, "TOOLCHAIN = {}\n", quote(&self.toolchain_name));
        let _ = writeln!(
            w,
            "TOOLCHAIN_PACKAGES = {}\n",
            quote(&format!("@{}//:packages", self.toolchain_repo))
        );
        for p in &self.probes {
            let _ = writeln!(w, "falco_probe(");
            for (k, v) in [
                ("name", &p.name),
                ("out", &p.out),
                ("arch", &p.arch.uname_m().to_owned()),
                ("kernel_release", &p.release),
                ("kernel_version", &p.kernel_version),
                ("target_id", &p.target_id),
            ] {
                let _ = writeln!(w, "    {k} = {},", quote(v));
            }
            w.push_str("    headers = [\n");
            for h in &p.headers {
                let _ = writeln!(w, "        {},", quote(h));
            }
            w.push_str(
                "    ],\n    driver = DRIVER,\n    driver_version = DRIVER_VERSION,\n    \
                 toolchain = TOOLCHAIN,\n    toolchain_packages = TOOLCHAIN_PACKAGES,\n)\n\n",
            );
        }
        w.push_str("filegroup(\n    name = \"all\",\n    srcs = [\n");
        for p in &self.probes {
            let _ = writeln!(w, "        {},", quote(&format!(":{}", p.name)));
        }
        w.push_str("    ],\n)\n");
        w
    }
}

/// The rules every package uses: the same text in every package.
const RULES: &str = r#""""Generated by `probeforge bazel`: the pinned toolchain as a repository rule, and one
probe as a genrule running `probeforge build` with no network from declared files only."""

def _probeforge_toolchain_impl(ctx):
    files = []
    for url, sha256 in sorted(ctx.attr.packages.items()):
        name = "debs/" + url.rsplit("/", 1)[-1]
        ctx.download(url = url, output = name, sha256 = sha256)
        files.append(name)
    ctx.file("BUILD.bazel", "filegroup(\n    name = \"packages\",\n    srcs = %r,\n    visibility = [\"//visibility:public\"],\n)\n" % files)

probeforge_toolchain = repository_rule(
    implementation = _probeforge_toolchain_impl,
    attrs = {"packages": attr.string_dict(mandatory = True, doc = "URL -> sha256")},
    doc = "A pinned toolchain's packages, downloaded by digest; probeforge unpacks them.",
)

def falco_probe(name, out, arch, kernel_release, kernel_version, target_id, headers, driver, toolchain, toolchain_packages, driver_version = None):
    """Falco's eBPF probe for one kernel: `probeforge build --offline` in a private cache."""
    cmd = [
        "T=$$(mktemp -d) && trap 'rm -rf \"$$T\"' EXIT &&",
        "$(location //:tools/probeforge) --quiet --offline --cache-dir \"$$T/cache\" build",
        "--scratch \"$$T\"",
        "--headers " + " ".join(["$(location %s)" % h for h in headers]),
        "--driver-source $(location %s)" % driver,
    ]
    if driver_version:
        cmd.append("--driver-version '%s'" % driver_version)
    cmd += [
        "--kernel-release '%s' --kernel-version '%s'" % (kernel_release, kernel_version),
        "--target-id '%s' --arch %s" % (target_id, arch),
        "--toolchain %s --toolchain-packages $(locations %s)" % (toolchain, toolchain_packages),
        "-o $(@D) > /dev/null",
    ]
    native.genrule(
        name = name,
        srcs = headers + [driver, toolchain_packages],
        outs = [out],
        tools = ["//:tools/probeforge"],
        cmd = " ".join(cmd),
        tags = ["block-network"],
        message = "probeforge build " + kernel_release,
    )
"#;

fn http_file(w: &mut String, f: &HttpFile) {
    let _ = write!(
        w,
        "http_file(\n    name = {},\n    downloaded_file_path = {},\n    sha256 = {},\n    urls = [{}],\n)\n",
        quote(&f.name),
        quote(file_name(&f.url)),
        quote(&f.sha256),
        quote(&f.url)
    );
}

/// Writes the package's files; each appears whole (temporary file, then rename).
fn write_package(dir: &Path, plan: &Plan, driver_file: Option<&PathBuf>) -> Result<()> {
    let put = |rel: &str, bytes: &[u8]| {
        let p = dir.join(rel);
        crate::base::write_atomic(&p, bytes).map_err(Error::write(&p))
    };
    put("WORKSPACE", plan.workspace().as_bytes())?;
    put("BUILD.bazel", plan.build().as_bytes())?;
    put("probeforge.bzl", RULES.as_bytes())?;
    if let (Some(f), DriverInput::File(name)) = (driver_file, &plan.driver) {
        copy_into(f, &dir.join("driver").join(name), 0o644)?;
    }
    // This binary, so the package needs nothing installed.
    let exe = std::env::current_exe().map_err(Error::read(Path::new("/proc/self/exe")))?;
    copy_into(&exe, &dir.join("tools/probeforge"), 0o755)
}

/// Copies `from` to `to` through a temporary sibling (a running copy is never written over).
fn copy_into(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = to.parent().expect("a file in the package");
    std::fs::create_dir_all(parent).map_err(Error::write(parent))?;
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(Error::write(parent))?;
    std::fs::copy(from, tmp.path()).map_err(Error::read(from))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(Error::write(tmp.path()))?;
    tmp.persist(to).map_err(|e| Error::write(to)(e.error))?;
    Ok(())
}

/// A Starlark string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn strip_extension(name: &str) -> &str {
    [".deb", ".rpm", ".tar.gz", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|e| name.strip_suffix(e))
        .unwrap_or(name)
}

/// An external repository's name: `[A-Za-z0-9_]`, starting with a letter.
fn repo_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !n.starts_with(|c: char| c.is_ascii_alphabetic()) {
        n.insert_str(0, "p_");
    }
    n
}

/// Names made unique in their order: a repeated one gets `_2`, `_3`, ...
fn unique(names: Vec<String>) -> Vec<String> {
    let mut taken = BTreeSet::new();
    names
        .into_iter()
        .map(|n| {
            let mut candidate = n.clone();
            let mut i = 1;
            while !taken.insert(candidate.clone()) {
                i += 1;
                candidate = format!("{n}_{i}");
            }
            candidate
        })
        .collect()
}

/// A value that ends up in a shell command and a Bazel name: listings are untrusted input.
fn check_word(what: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c));
    match ok {
        true => Ok(()),
        false => Err(Error::Usage(format!(
            "{what} `{v}` has characters a Bazel package cannot carry safely"
        ))),
    }
}

fn check_url(u: &str) -> Result<()> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && !u
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\' || c == ' ')
        && !file_name(u).is_empty();
    match ok {
        true => Ok(()),
        false => Err(Error::Usage(format!(
            "package URL `{u}` cannot go into a Bazel package"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::PackageRef;

    fn kernel(release: &str, arch: Arch, urls: &[&str]) -> KernelRecord {
        KernelRecord {
            target: "debian-bookworm".into(),
            target_id: "debian".into(),
            release: release.into(),
            kernel_version: "1".into(),
            arch,
            origin: "bookworm".into(),
            packages: urls
                .iter()
                .map(|u| PackageRef {
                    name: file_name(u).into(),
                    version: String::new(),
                    url: u.to_string(),
                    size: 0,
                    sha256: format!("{:064x}", u.len()),
                })
                .collect(),
            unsigned_metadata: false,
        }
    }

    fn plan(kernels: &[KernelRecord]) -> Plan {
        let m = Manifest::named("llvm-14-debian12").unwrap();
        let tc = [Download {
            url: "http://m/pool/clang.deb".into(),
            sha256: "ab".repeat(32),
        }]
        .into_iter()
        .collect();
        let driver = DriverInput::File("libs.tar.gz".into());
        Plan::new(kernels, driver, Some("8.0.0+driver".into()), &m, tc).unwrap()
    }

    #[test]
    fn shared_packages_are_one_http_file_and_names_are_unique_and_safe() {
        let common = "http://m/pool/linux-headers-6.1.0-50-common_6.1.176-1_all.deb";
        let p = plan(&[
            kernel(
                "6.1.0-50-amd64",
                Arch::X86_64,
                &[
                    common,
                    "http://m/a/linux-headers-6.1.0-50-amd64_6.1.176-1_amd64.deb",
                ],
            ),
            kernel(
                "6.1.0-50-cloud-amd64",
                Arch::X86_64,
                &[
                    common,
                    "http://m/b/linux-headers-6.1.0-50-amd64_6.1.176-1_amd64.deb",
                ],
            ),
        ]);
        let names: Vec<&str> = p.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux_headers_6_1_0_50_amd64_6_1_176_1_amd64",
                "linux_headers_6_1_0_50_amd64_6_1_176_1_amd64_2",
                "linux_headers_6_1_0_50_common_6_1_176_1_all",
            ]
        );
        assert_eq!(p.probes[0].name, "6.1.0-50-amd64");
        assert_eq!(p.probes[0].out, "falco_debian_6.1.0-50-amd64_1.o");
        let build = p.build();
        assert!(build.contains("\"@linux_headers_6_1_0_50_common_6_1_176_1_all//file\""));
        assert!(p.workspace().contains(
            "downloaded_file_path = \"linux-headers-6.1.0-50-common_6.1.176-1_all.deb\""
        ));
    }

    #[test]
    fn a_release_shared_by_two_arches_gets_arch_names_and_folders() {
        let p = plan(&[
            kernel("5.10.1-1.amzn2", Arch::X86_64, &["http://m/x.rpm"]),
            kernel("5.10.1-1.amzn2", Arch::Aarch64, &["http://m/y.rpm"]),
        ]);
        let outs: Vec<(&str, &str)> = p
            .probes
            .iter()
            .map(|p| (p.name.as_str(), p.out.as_str()))
            .collect();
        assert_eq!(
            outs,
            [
                (
                    "5.10.1-1.amzn2_x86_64",
                    "x86_64/falco_debian_5.10.1-1.amzn2_1.o"
                ),
                (
                    "5.10.1-1.amzn2_aarch64",
                    "aarch64/falco_debian_5.10.1-1.amzn2_1.o"
                ),
            ]
        );
    }

    #[test]
    fn untrusted_listings_cannot_reach_the_shell_or_the_starlark() {
        let m = Manifest::named("llvm-14-debian12").unwrap();
        let bad = [
            kernel("6.1'; rm -rf /; '", Arch::X86_64, &["http://m/a.deb"]),
            kernel("6.1", Arch::X86_64, &["http://m/a\".deb"]),
            kernel("6.1", Arch::X86_64, &["file:///etc/passwd"]),
        ];
        for k in bad {
            let e = Plan::new(
                &[k],
                DriverInput::File("x".into()),
                None,
                &m,
                BTreeSet::new(),
            )
            .unwrap_err();
            assert!(e.is_usage(), "{e}");
        }
        assert_eq!(repo_name("9.1.0+driver"), "p_9_1_0_driver");
        assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
    }

    #[test]
    fn rendering_is_deterministic() {
        let ks = [
            kernel(
                "6.1.0-50-amd64",
                Arch::X86_64,
                &["http://m/h1.deb", "http://m/c.deb"],
            ),
            kernel(
                "6.12.1-amd64",
                Arch::X86_64,
                &["http://m/h2.deb", "http://m/c.deb"],
            ),
        ];
        let a = plan(&ks);
        let b = plan(&ks);
        assert_eq!(a.workspace(), b.workspace());
        assert_eq!(a.build(), b.build());
        // Headers within a rule are sorted by label, whatever the listing's order.
        assert_eq!(a.probes[0].headers, ["@c//file", "@h1//file"]);
    }
}

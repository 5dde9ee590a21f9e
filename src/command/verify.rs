//! `probeforge verify`: boot the kernel the probes were built for under QEMU and prove them,
//! with probeforge's loader (programs through the verifier, events decoded with the driver's
//! own tables) or with Falco's real userspace (Debian's sysdig).
//!
//! Also where a kernel's image is found for a probe: from the same repository as its headers
//! ([`kernel_image_for`]), or from Falco's file name ([`image_for_probe_names`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kernel::Arch;
use crate::pipeline;
use crate::report::{Phase, Reporter};
use crate::session::{self, Session};
use crate::verify::{self, events, image, userspace, Judgement, VmProbe};

use super::{Error, Result};

/// What `probeforge verify` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Probe objects, all for one kernel.
    pub probes: Vec<PathBuf>,
    /// A vmlinuz or the package holding it; `None`: found from the probes' names.
    pub kernel_image: Option<PathBuf>,
    /// Where to look for the kernel image when none is given.
    pub target: Option<String>,
    pub cmdline: String,
    /// `none`, `integrity` or `confidentiality`.
    pub lockdown: Option<String>,
    pub timeout: Duration,
    /// `auto`, `kvm` or `tcg`.
    pub accel: String,
    /// The driver sources the probes were built from (their event tables).
    pub driver_sources: Vec<PathBuf>,
    /// Only prove the programs load.
    pub no_events: bool,
    pub userspace: Option<userspace::Request>,
    /// The clang that compiles the driver's event tables.
    pub toolchain: super::toolchain::Options,
    /// Boot through Secure Boot (OVMF, shim, grub) with this certificate (PEM or DER)
    /// enrolled in shim's MOK list.
    pub mok: Option<PathBuf>,
}

/// What the VM said of the probes.
#[derive(Debug)]
pub struct Verified {
    pub verdict: verify::Verdict,
    /// One per report, in order.
    pub judged: Vec<Judgement>,
    /// How many probes went into the VM (a report missing is a failure).
    pub sent: usize,
    pub kernel_image: PathBuf,
}

impl Verified {
    /// Every probe reported back, and every report is ok.
    pub fn ok(&self) -> bool {
        self.judged.len() == self.sent && self.judged.iter().all(|j| j.ok)
    }
}

/// Proves the probes in their kernel.
pub fn run(o: &Options, net: &session::Options, rep: &dyn Reporter) -> Result<Verified> {
    if o.mok.is_some() && o.kernel_image.is_none() {
        return Err(Error::Usage(
            "--mok needs --kernel-image: the kernel's signed image (Debian's linux-image-R package, not -unsigned), which shim and grub check".into(),
        ));
    }
    let kernel_image = match &o.kernel_image {
        Some(i) => i.clone(),
        None => image_for_probe_names(&o.probes, o.target.as_deref(), net, rep)?,
    };
    // A meta-package (Debian 7.x `linux-image-R`) names the package with the kernel: fetch it.
    let image = match image::read_package(&kernel_image)? {
        image::Contents::Image(v) => v,
        image::Contents::Meta(m) => {
            let s = Session::open(net)?;
            let f = image::follow(&s.lister(), &m)?;
            tracing::info!(
                "kernel of `{}` from {}",
                kernel_image.display(),
                f.chain.join(" -> ")
            );
            f.image
        }
    };
    if o.mok.is_some() && !verify::uefi::pe_signed(&image) {
        return Err(Error::Usage(format!(
            "--mok: `{}` {}",
            kernel_image.display(),
            verify::uefi::Error::UnsignedKernel
        )));
    }
    let mut probes = Vec::new();
    for p in &o.probes {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(p).map_err(Error::read(p))?;
        probes.push(VmProbe {
            name,
            bytes,
            tables: None,
        });
    }
    let arch = verify::image_arch(&image).ok_or_else(|| {
        Error::Usage(format!(
            "`{}` is not a kernel image probeforge can boot (an x86 bzImage or an arm64 Image)",
            kernel_image.display()
        ))
    })?;
    let userspace = match &o.userspace {
        Some(req) => {
            let s = Session::open(net)?;
            let u = userspace::prepare(&s.lister(), req, &probes, arch)?;
            rep.note(&format!(
                "userspace: sysdig {} from {} ({}; {}, {:.1} MB in the VM)",
                u.sysdig_version,
                u.suite.name,
                crate::report::count(u.packages.len(), "package"),
                crate::report::count(u.files, "file"),
                u.bytes as f64 / 1e6
            ));
            Some(u)
        }
        None => None,
    };
    if !o.no_events && userspace.is_none() {
        if let Err(e) = attach_tables(o, net, arch, &mut probes, rep) {
            if !o.driver_sources.is_empty() {
                return Err(e);
            }
            rep.warn(&format!(
                "no event capture (give --driver-source, or --no-events): {}",
                super::chain(&e)
            ));
        }
    }
    let mut cmdline = o.cmdline.clone();
    if let Some(l) = &o.lockdown {
        cmdline = format!("{cmdline} lockdown={l}").trim().to_owned();
    }
    let subject = format!(
        "{} with {} probe(s) under QEMU ({})",
        kernel_image.display(),
        probes.len(),
        o.accel
    );
    rep.phase(&subject, Phase::Boot);
    let scratch = pipeline::default_scratch();
    let firmware = match &o.mok {
        Some(cert) => Some(secure_boot_firmware(cert, o.target.as_deref(), net, rep)?),
        None => None,
    };
    let v = match (&userspace, &firmware) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "--mok boots with probeforge's loader; it does not combine with --userspace".into(),
            ))
        }
        (u, fw) => verify::boot(&verify::Boot {
            cmdline: &cmdline,
            userspace: u.as_ref(),
            firmware: fw.as_ref(),
            ..verify::Boot::new(&image, &probes, o.timeout, &scratch, &o.accel)
        }),
    };
    rep.done(&subject);
    let verdict = v?;
    let mut judged: Vec<Judgement> = verdict.reports.iter().map(verify::judge).collect();
    if let Some(fw) = &firmware {
        // A module that loads proves nothing about the MOK unless the kernel took the
        // certificate the way a node's kernel does.
        for (r, j) in verdict.reports.iter().zip(&mut judged) {
            match verify::mok_trusted(r, &fw.report.mok) {
                Ok(line) => j.line.push_str(&format!("\n  {line}")),
                Err(why) => {
                    j.ok = false;
                    j.line.push_str(&format!("\n  {why}"));
                }
            }
        }
    }
    Ok(Verified {
        judged,
        sent: probes.len(),
        verdict,
        kernel_image,
    })
}

/// The Secure Boot firmware for `verify --mok`: OVMF, shim and grub from `target` (default
/// Debian bookworm, whose shim and grub boot its kernels), the certificate enrolled.
fn secure_boot_firmware(
    cert: &Path,
    target: Option<&str>,
    net: &session::Options,
    rep: &dyn Reporter,
) -> Result<verify::uefi::Firmware> {
    let bytes = std::fs::read(cert).map_err(Error::read(cert))?;
    let target = target.unwrap_or(SECURE_BOOT_TARGET);
    let s = Session::open(net)?;
    let fw = verify::uefi::prepare(&s.lister(), target, &bytes)
        .map_err(|e| Error::Usage(format!("--mok `{}`: {}", cert.display(), super::chain(&e))))?;
    rep.note(&format!(
        "Secure Boot: {} from {target}; `{}` enrolled in shim's MokList",
        fw.report
            .packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(", "),
        fw.report.mok.subject
    ));
    Ok(fw)
}

/// Where `verify --mok` takes OVMF, shim and grub from without `--target`.
const SECURE_BOOT_TARGET: &str = "debian-bookworm";

/// Gives each probe the event tables of the driver source it was built from.
fn attach_tables(
    o: &Options,
    net: &session::Options,
    arch: Arch,
    probes: &mut [VmProbe],
    rep: &dyn Reporter,
) -> Result<()> {
    let tc = super::toolchain::resolve(&o.toolchain, net, rep)?;
    let scratch = pipeline::default_scratch();
    // A module's events need only the schema (10.x drivers have no `bpf/`); a probe's, its
    // maps and settings too.
    let only_modules = probes.iter().all(VmProbe::is_module);
    let tables_of = |p: &Path| {
        if only_modules {
            events::module_tables_from_source(p, arch, &tc, &scratch)
        } else {
            events::tables_from_source(p, arch, &tc, &scratch)
        }
    };
    let given = !o.driver_sources.is_empty();
    let mut sources = o
        .driver_sources
        .iter()
        .map(|p| tables_of(p).map_err(Error::tables))
        .collect::<Result<Vec<_>>>()?;
    for p in probes.iter_mut() {
        let meta = p.driver_meta();
        let found = match sources.len() {
            1 if given => Some(0),
            _ => sources
                .iter()
                .position(|(s, _)| events::source_matches(s, &meta)),
        };
        let i = match found {
            Some(i) => i,
            None if given => {
                return Err(Error::Usage(format!(
                    "`{}` (probe_version {}) was built from none of the --driver-source given",
                    p.name,
                    meta.probe_version.as_deref().unwrap_or("?")
                )))
            }
            None => {
                // The source of this probe_version, downloaded (cached), compiled once; a probe
                // whose source cannot be had is still proven to load.
                let fetched = match &meta.probe_version {
                    None => Err("no probe_version".to_owned()),
                    Some(v) => Session::open(net)
                        .and_then(|s| s.driver_source(v, None))
                        .map_err(|e| super::chain(&e))
                        .and_then(|path| tables_of(&path).map_err(|e| super::chain(&e))),
                };
                match fetched {
                    Ok(t) => sources.push(t),
                    Err(e) => {
                        rep.warn(&format!(
                            "`{}`: no event capture (give --driver-source, or --no-events): {e}",
                            p.name
                        ));
                        continue;
                    }
                }
                sources.len() - 1
            }
        };
        p.tables = Some(sources[i].1.clone());
    }
    Ok(())
}

/// The kernel image for probes given without one: the release and target id from Falco's file
/// name (`falco_<target-id>_<release>_<version>.o`; all probes for one kernel; the listed
/// kernel of that file name), the arch from the release's flavour, the image from `target` or
/// each catalog target with that id.
pub fn image_for_probe_names(
    probes: &[PathBuf],
    target: Option<&str>,
    net: &session::Options,
    rep: &dyn Reporter,
) -> Result<PathBuf> {
    let mut kernels = std::collections::BTreeSet::new();
    for p in probes {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let stem = name.strip_suffix(".ko").or_else(|| name.strip_suffix(".o"));
        let parts: Vec<&str> = stem.unwrap_or(&name).split('_').collect();
        let [_, target_id, release, _] = parts[..] else {
            return Err(Error::Usage(format!(
                "`{}` is not named falco_<target-id>_<release>_<version>.o (or .ko): give --kernel-image",
                p.display()
            )));
        };
        kernels.insert((target_id.to_owned(), release.to_owned()));
    }
    if kernels.len() != 1 {
        return Err(Error::Usage(format!(
            "the probes are for {} kernels; verify boots one: give the probes of one kernel, or --kernel-image",
            kernels.len()
        )));
    }
    let (target_id, release) = kernels.into_iter().next().expect("one");
    let arch = if release.contains("arm64") || release.contains("aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let s = Session::open(net)?;
    let targets: Vec<String> = match target {
        Some(t) => vec![t.to_owned()],
        None => s
            .catalog
            .targets
            .iter()
            .filter(|t| t.kind == "apt" && target_id.starts_with(t.target_id.as_str()))
            .map(|t| t.name.clone())
            .collect(),
    };
    let mut errors = Vec::new();
    for t in &targets {
        // Any name of the kernel (Debian's file names carry the package version,
        // `6.1.170-3-amd64`): the listed kernel it names (`6.1.0-47-amd64`), said.
        let release = match s.lister().list(t, &[arch]) {
            Ok(ks) => match crate::names::resolve(&ks, &release) {
                Ok(Some((r, form))) => {
                    if r != release {
                        rep.note(&format!("`{release}` ({form}) is kernel `{r}` in {t}"));
                    }
                    r
                }
                Ok(None) => release.clone(),
                Err(e) => {
                    errors.push(format!("{t}: {e}"));
                    continue;
                }
            },
            Err(_) => release.clone(),
        };
        match kernel_image_for(&s, t, arch, &release) {
            Ok(p) => {
                rep.note(&format!(
                    "kernel image for {release} from {t}: {}",
                    p.display()
                ));
                return Ok(p);
            }
            Err(e) => errors.push(format!("{t}: {}", super::chain(&e))),
        }
    }
    Err(Error::Usage(format!(
        "no kernel image for `{release}` ({arch}) in {}: give --kernel-image{}",
        if targets.is_empty() {
            "any catalog target".to_owned()
        } else {
            targets.join(", ")
        },
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join("; "))
        }
    )))
}

/// The kernel image package of a kernel from the same repository as its headers. Unsigned
/// first (Debian up to 6.x: `linux-image-R-unsigned`; 7.x: `linux-binary-unsigned-R`), then
/// the signed names, following a meta-package (7.x `linux-image-R`) to its kernel.
pub fn kernel_image_for(s: &Session, target: &str, arch: Arch, release: &str) -> Result<PathBuf> {
    let mut last = None;
    for name in [
        format!("linux-image-{release}-unsigned"),
        format!("linux-binary-unsigned-{release}"),
        format!("linux-image-{release}"),
        format!("linux-binary-{release}"),
    ] {
        match s.lister().find_package(target, arch, &name) {
            Ok(p) => {
                let path = s.client.fetch_verified(&p.url, &p.sha256, Some(p.size))?.0;
                // Only the signed `linux-image-R` is a meta-package (from 7.x).
                if name != format!("linux-image-{release}") {
                    return Ok(path);
                }
                return match image::read_package(&path)? {
                    image::Contents::Image(_) => Ok(path),
                    image::Contents::Meta(m) => Ok(image::follow(&s.lister(), &m)?.package),
                };
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Error::NoImage {
        release: release.to_owned(),
        target: target.to_owned(),
        source: Box::new(Error::Repo(last.expect("tried"))),
    })
}

/// One probe proven in its kernel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OneVerdict {
    pub judgement: Judgement,
    pub booted_release: Option<String>,
    pub accel: String,
    pub seconds: f64,
}

impl std::fmt::Display for OneVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (in {} under {}, {:.1}s)",
            self.judgement.line,
            self.booted_release.as_deref().unwrap_or("?"),
            self.accel,
            self.seconds
        )
    }
}

/// Boots one probe in its kernel (an image file or package).
pub fn one(
    image: &Path,
    name: &str,
    bytes: Vec<u8>,
    tables: Option<events::DriverTables>,
) -> Result<OneVerdict> {
    let vmlinuz = verify::kernel_image(image)?;
    let probes = [VmProbe {
        name: name.to_owned(),
        bytes,
        tables,
    }];
    let scratch = pipeline::default_scratch();
    let v = verify::boot(&verify::Boot::new(
        &vmlinuz,
        &probes,
        Duration::from_secs(300),
        &scratch,
        "auto",
    ))?;
    let judgement = match v.reports.first() {
        Some(r) => verify::judge(r),
        None => Judgement {
            ok: false,
            line: format!("FAIL {name}: no report from the VM\n{}", v.console_tail),
        },
    };
    Ok(OneVerdict {
        judgement,
        booted_release: v.booted_release,
        accel: v.accel,
        seconds: v.seconds,
    })
}

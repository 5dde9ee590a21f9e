//! Proving a probe loads: boot the target kernel under QEMU (TCG) with an initramfs that
//! probeforge writes itself, holding `probeforge-init` (the loader, with its shared libraries),
//! and the probes; read the per-program verdicts it writes to a channel of their own (x86:
//! the `isa-debugcon` port; arm64: semihosting), which QEMU writes to a file. The serial
//! console stays for people and for the kernel's messages (whose tail a failure shows).
//!
//! A hang, a panic or a missing report is a failure with the console's tail, never a pass.

pub mod efi;
pub mod events;
pub mod image;
pub mod uefi;
pub mod userspace;
pub mod workload;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kernel::Arch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find `probeforge-init` beside `{0}` (build it: cargo build --release); or set PROBEFORGE_INIT")]
    NoInit(PathBuf),
    #[error("no aarch64 `probeforge-init` (looked for `{0}`): an aarch64 guest needs the loader built for aarch64-unknown-linux-gnu, static; build it with\n  rustup target add aarch64-unknown-linux-gnu\n  apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm\n  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --manifest-path init/Cargo.toml --target aarch64-unknown-linux-gnu --target-dir target/init\nor set PROBEFORGE_INIT_AARCH64")]
    NoForeignInit(PathBuf),
    #[error("`{0}` is not a kernel image probeforge can boot (an x86 bzImage or an arm64 Image, gzip or plain)")]
    UnknownImage(String),
    #[error("`{path}` is a {found} binary; a {want} guest needs a static {want} loader")]
    WrongInit {
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("`{0}`: no kernel in this package (no boot/vmlinuz-*, no [usr/]lib/modules/*/vmlinuz, no dependency on a package holding one)")]
    NoVmlinuz(PathBuf),
    #[error("`{path}` is `{package}`, a meta-package without a kernel: the kernel is in `{dependency}`; give that package")]
    MetaPackage {
        path: PathBuf,
        package: String,
        dependency: String,
    },
    #[error("`{path}` is `{package}`, a meta-package without a kernel, and its dependency `{dependency}` is in none of the catalog's APT targets (searched: {searched})")]
    MetaNotFound {
        path: PathBuf,
        package: String,
        dependency: String,
        searched: String,
        #[source]
        source: Option<Box<crate::repo::Error>>,
    },
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{0}` (install qemu-system-x86, or qemu-system-arm for aarch64 guests)")]
    NoQemu(String, #[source] std::io::Error),
    #[error("the VM gave no verdict within {secs}s ({what}); console tail:\n{tail}")]
    NoVerdict {
        secs: u64,
        what: String,
        tail: String,
    },
    #[error("the kernel printed nothing within {secs}s under {accel} ({qemu})")]
    NoKernelOutput {
        accel: String,
        secs: u64,
        qemu: String,
    },
    #[error("the kernel did not start: no console output within {secs}s under {accel} ({qemu}), {boots} boot(s); not a verdict on the probe")]
    KernelDidNotStart {
        accel: String,
        secs: u64,
        qemu: String,
        boots: u32,
    },
    #[error("`{0}`: cannot list the loader's libraries")]
    Libraries(PathBuf),
    #[error("the Secure Boot VM")]
    Uefi(#[from] uefi::Error),
}

impl Error {
    fn from_meta(m: &image::Meta) -> Error {
        match &m.kernel {
            Some((dep, _)) => Error::MetaPackage {
                path: m.path.clone(),
                package: m.package.clone(),
                dependency: dep.clone(),
            },
            None => Error::NoVmlinuz(m.path.clone()),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// One newc cpio archive, written in memory.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let name_z = format!("{name}\0");
        let hdr =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, 1, 0, data.len(), 0, 0, rdev.0, rdev.1, name_z.len(), 0
        );
        self.buf.extend_from_slice(hdr.as_bytes());
        self.buf.extend_from_slice(name_z.as_bytes());
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(data);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, data, (0, 0));
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes(), (0, 0));
    }
    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }
    /// Adds the parents of `path` not yet added.
    fn parents(&mut self, path: &str, seen: &mut std::collections::BTreeSet<String>) {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(p);
            if seen.insert(cur.clone()) {
                self.dir(&cur);
            }
        }
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}

/// The loader for a guest of `arch`: the host's is [`init_binary`]; another arch's is
/// `$PROBEFORGE_INIT_<ARCH>`, or built from `init/` into `target/init/<triple>/release/`
/// (searched from the running binary's directory upwards).
pub fn init_binary_for(arch: Arch) -> Result<PathBuf, Error> {
    if Some(arch) == Arch::host() {
        return init_binary();
    }
    let var = format!("PROBEFORGE_INIT_{}", arch.uname_m().to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return Ok(PathBuf::from(p));
    }
    let rel = format!(
        "init/{}-unknown-linux-gnu/release/probeforge-init",
        arch.uname_m()
    );
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let p = d.join(&rel);
        if p.is_file() {
            return Ok(p);
        }
        dir = d.parent();
    }
    Err(Error::NoForeignInit(PathBuf::from("target").join(rel)))
}

/// The arch a kernel image runs on: an x86 bzImage (`HdrS` at 0x202) or an arm64 `Image`
/// (`ARM\x64` at 0x38), plain or gzip-compressed (Debian's arm64 `vmlinuz`).
pub fn image_arch(vmlinuz: &[u8]) -> Option<Arch> {
    if vmlinuz.get(0x202..0x206) == Some(b"HdrS") {
        return Some(Arch::X86_64);
    }
    if vmlinuz.get(0x38..0x3c) == Some(b"ARM\x64") {
        return Some(Arch::Aarch64);
    }
    if vmlinuz.starts_with(&[0x1f, 0x8b]) {
        let mut head = [0u8; 0x40];
        let mut d = flate2::read::GzDecoder::new(vmlinuz);
        d.read_exact(&mut head).ok()?;
        return (&head[0x38..0x3c] == b"ARM\x64").then_some(Arch::Aarch64);
    }
    None
}

fn elf_arch(bin: &[u8]) -> Option<Arch> {
    match u16::from_le_bytes(bin.get(18..20)?.try_into().ok()?) {
        62 => Some(Arch::X86_64),
        183 => Some(Arch::Aarch64),
        _ => None,
    }
}

/// `probeforge-init`: `$PROBEFORGE_INIT`, or beside the running binary (or one level up, for
/// test binaries in `deps/`).
pub fn init_binary() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("PROBEFORGE_INIT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_owned).unwrap_or_default();
    for d in [
        dir.clone(),
        dir.parent().map(Path::to_owned).unwrap_or_default(),
    ] {
        let p = d.join("probeforge-init");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::NoInit(exe))
}

/// The shared libraries (and loader) a dynamic binary needs, as the host's loader resolves them.
pub fn libraries(bin: &Path) -> Result<Vec<PathBuf>, Error> {
    let loaders = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"];
    let loader = loaders
        .iter()
        .find(|l| Path::new(l).exists())
        .ok_or_else(|| Error::Libraries(bin.to_owned()))?;
    let out = Command::new(loader)
        .arg("--list")
        .arg(bin)
        .output()
        .map_err(|_| Error::Libraries(bin.to_owned()))?;
    if !out.status.success() {
        // A static binary: nothing to add.
        return Ok(Vec::new());
    }
    let mut v = vec![PathBuf::from(loader)];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((_, rest)) = line.split_once("=> ") {
            if let Some(p) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                v.push(PathBuf::from(p));
            }
        }
    }
    v.sort();
    v.dedup();
    Ok(v)
}

/// A probe or a module (`.ko`) to boot with, and the tables of the driver it was built from
/// (for event capture).
#[derive(Debug, Clone)]
pub struct VmProbe {
    pub name: String,
    pub bytes: Vec<u8>,
    pub tables: Option<events::DriverTables>,
}

impl VmProbe {
    /// A kernel module (`.ko`), loaded with `finit_module`, rather than a probe.
    pub fn is_module(&self) -> bool {
        self.name.ends_with(".ko")
    }

    /// What it says of the driver it was built from (versions, license), to match it with its
    /// source and its userspace: a probe's sections, or a module's `.modinfo` (`version`,
    /// `api_version`, `schema_version`) in the same words.
    pub fn driver_meta(&self) -> crate::validate::Report {
        if !self.is_module() {
            return crate::validate::validate(&self.bytes, &Default::default());
        }
        let info = crate::kmod::validate::modinfo(&self.bytes).unwrap_or_default();
        let get = |k: &str| {
            info.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let semver = |k: &str| {
            let v = get(k)?;
            let mut n = v.split('.').map(|x| x.parse::<u64>().ok());
            Some(crate::driver::encode_semver((
                n.next()??,
                n.next()??,
                n.next()??,
            )))
        };
        crate::validate::Report {
            probe_version: get("version"),
            api_version: semver("api_version"),
            schema_version: semver("schema_version"),
            license: get("license"),
            build_commit: get("build_commit"),
            ..Default::default()
        }
    }
}

/// The initramfs: `/init`, its libraries at their paths, `/dev/console`, the probes, and beside
/// each probe with tables `probes/<name>.tables/`: one file per map (its values in key order),
/// `filler_names` (NUL-separated, `PPM_FILLER_*` order) and `settings.json` (the layout of
/// `struct scap_bpf_settings`).
/// The loader must be built for `arch`, the guest's.
pub fn initramfs(init: &Path, arch: Arch, probes: &[VmProbe]) -> Result<Vec<u8>, Error> {
    initramfs_with(init, arch, probes, None)
}

/// [`initramfs`], and with a userspace: its tree under `/userspace` (the root the loader
/// chroots sysdig into) and the loader's instructions in `/userspace.json`.
pub fn initramfs_with(
    init: &Path,
    arch: Arch,
    probes: &[VmProbe],
    userspace: Option<(&userspace::Userspace, Duration)>,
) -> Result<Vec<u8>, Error> {
    let init_bytes = std::fs::read(init).map_err(io(init))?;
    let init_arch = elf_arch(&init_bytes);
    if init_arch != Some(arch) {
        return Err(Error::WrongInit {
            path: init.to_owned(),
            found: init_arch
                .map_or("non-ELF or unknown", |a| a.uname_m())
                .into(),
            want: arch.uname_m().into(),
        });
    }
    let foreign = Some(arch) != Arch::host();
    let mut c = Cpio::default();
    let mut seen = std::collections::BTreeSet::new();
    for d in ["dev", "proc", "sys", "probes", "tmp"] {
        seen.insert(d.to_owned());
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    c.char_dev("dev/null", 1, 3);
    c.file("init", 0o755, &init_bytes);
    // The host's loader resolves a host binary's libraries; a foreign loader must be static.
    let libs = if foreign {
        Vec::new()
    } else {
        libraries(init)?
    };
    for lib in libs {
        let real = std::fs::canonicalize(&lib).map_err(io(&lib))?;
        let name = lib.to_string_lossy().trim_start_matches('/').to_owned();
        c.parents(&name, &mut seen);
        c.file(&name, 0o755, &std::fs::read(&real).map_err(io(&real))?);
    }
    for p in probes {
        c.file(&format!("probes/{}", p.name), 0o644, &p.bytes);
        if let Some(t) = &p.tables {
            let dir = format!("probes/{}.tables", p.name);
            c.dir(&dir);
            if p.is_module() {
                // A module fills its own tables: the folder only asks for capture.
                continue;
            }
            for (map, values) in &t.maps {
                c.file(&format!("{dir}/{map}"), 0o644, values);
            }
            let mut names = Vec::new();
            for n in &t.filler_names {
                names.extend_from_slice(n.as_bytes());
                names.push(0);
            }
            c.file(&format!("{dir}/filler_names"), 0o644, &names);
            let layout = serde_json::json!({"size": t.settings_size, "fields": t.settings});
            c.file(
                &format!("{dir}/settings.json"),
                0o644,
                layout.to_string().as_bytes(),
            );
        }
    }
    if let Some((u, deadline)) = userspace {
        let root = userspace::ROOT;
        for d in ["", "/proc", "/sys", "/dev", "/tmp", "/probes"] {
            let d = format!("{root}{d}");
            seen.insert(d.clone());
            c.dir(&d);
        }
        for (path, target) in &u.tree.links {
            let name = format!("{root}/{path}");
            c.parents(&name, &mut seen);
            seen.insert(name.clone());
            c.symlink(&name, target);
        }
        for (path, (mode, data)) in &u.tree.files {
            let name = format!("{root}/{path}");
            c.parents(&name, &mut seen);
            c.file(&name, *mode, data);
        }
        c.file(
            workload::USERSPACE_MANIFEST.trim_start_matches('/'),
            0o644,
            u.manifest(deadline).to_string().as_bytes(),
        );
    }
    Ok(c.finish())
}

/// The kernel image: a `vmlinuz` file as is, or the kernel inside a package (see
/// [`image::read_package`] for the layouts). A meta-package is an error naming the package
/// that holds its kernel; [`image::follow`] fetches that one.
pub fn kernel_image(input: &Path) -> Result<Vec<u8>, Error> {
    match image::read_package(input)? {
        image::Contents::Image(v) => Ok(v),
        image::Contents::Meta(m) => Err(Error::from_meta(&m)),
    }
}

/// What the VM said.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// The accelerator the verdict came from (`kvm` or `tcg`).
    pub accel: String,
    /// How the verdict left the VM (`debugcon`, `semihosting`, or `console` with the reason).
    pub channel: String,
    /// Boots it took (a guest that printed nothing is booted once more).
    pub boots: u32,
    pub booted_release: Option<String>,
    pub reports: Vec<serde_json::Value>,
    pub seconds: f64,
    pub console_tail: String,
    /// The userspace that judged the probes (`verify --userspace`): suite, sysdig's version,
    /// every package with its digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userspace: Option<userspace::Userspace>,
    /// The Secure Boot firmware it booted through (`verify --mok`): packages, the enrolled
    /// certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<uefi::Report>,
}

/// A probe's report judged: `ok` when it matched the kernel, every map was created, every
/// program loaded, and (where events were captured) every workload event was seen; the one-line
/// summary, then the failures.
pub fn judge(report: &serde_json::Value) -> Judgement {
    let (ok, line) = judge_report(report);
    Judgement { ok, line }
}

/// A probe's report, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Judgement {
    /// The probe loaded whole, and its workload's events were seen where events were captured.
    pub ok: bool,
    /// `ok   <probe>: ...` or `FAIL <probe>: ...`, then one line per failure.
    pub line: String,
}

fn judge_report(report: &serde_json::Value) -> (bool, String) {
    let name = report["probe"].as_str().unwrap_or("?");
    if let Some(e) = report["error"].as_str() {
        let log: Vec<&str> = report["kernel_log"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .collect();
        if log.len() > 1 {
            return (
                false,
                format!(
                    "FAIL {name}: {e}\n  the kernel said:\n    {}",
                    log.join("\n    ")
                ),
            );
        }
        return (false, format!("FAIL {name}: {e}"));
    }
    let sysdig = &report["sysdig"];
    if sysdig.is_object() {
        let who = sysdig["userspace"].as_str().unwrap_or("sysdig");
        if sysdig["ok"] == true {
            let ev = |k: &str, args: &[&str]| {
                let e = &sysdig[k];
                let shown: Vec<String> = args
                    .iter()
                    .filter_map(|a| {
                        e["args"]
                            .as_array()?
                            .iter()
                            .find(|p| p[0] == *a)
                            .map(|p| format!("{a}={}", p[1].as_str().unwrap_or("")))
                    })
                    .collect();
                format!("{k} {}", shown.join(" "))
            };
            return (
                true,
                format!(
                    "ok   {name}: {who} captured the workload: {}, {} ({} events printed)",
                    ev("execve", &["exe", "args"]),
                    ev("openat", &["name"]),
                    sysdig["events"]
                ),
            );
        }
        let why = sysdig["message"]
            .as_str()
            .unwrap_or("sysdig did not capture");
        return (
            false,
            format!(
                "FAIL {name}: {why}\n  sysdig's stderr:\n    {}",
                sysdig["stderr_tail"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', "\n    ")
            ),
        );
    }
    let mut bad: Vec<String> = report["map_errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    bad.extend(
        report["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["ok"] != true)
            .map(|p| {
                format!(
                    "{}: {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["error"].as_str().unwrap_or("")
                )
            }),
    );
    let ev = &report["events"];
    let events = if ev.is_object() {
        bad.extend(
            ev["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(|e| format!("events: {e}"))),
        );
        bad.extend(
            ev["expectations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["seen"] != true)
                .map(|x| {
                    format!(
                        "events: not captured: {}",
                        x["what"].as_str().unwrap_or("?")
                    )
                }),
        );
        match report["capture"]["captured"].as_u64() {
            Some(n) => format!(
                "; {} workload events decoded ({n} captured, {} lost)",
                ev["decoded"], ev["lost"]
            ),
            None => "; no events captured".into(),
        }
    } else {
        String::new()
    };
    let head = if report["kind"] == "kmod" {
        if report["unloaded"] != true {
            bad.push(format!(
                "the module did not unload: {}",
                report["unload_error"].as_str().unwrap_or("?")
            ));
        }
        let taint: Vec<&str> = report["taint"]["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .collect();
        format!(
            "{name}: module `{}` loaded{}, {}{events}",
            report["module"].as_str().unwrap_or("?"),
            if taint.is_empty() {
                String::new()
            } else {
                format!(" (taint {})", taint.join(", "))
            },
            report["device"].as_str().unwrap_or("no device")
        )
    } else {
        format!(
            "{name}: {}/{} programs loaded, {} maps{events}",
            report["loaded"], report["programs"], report["maps"]
        )
    };
    const SHOWN: usize = 12;
    if bad.len() > SHOWN {
        let more = bad.len() - SHOWN;
        bad.truncate(SHOWN);
        bad.push(format!("... and {more} more (--json has them all)"));
    }
    if bad.is_empty() {
        (true, format!("ok   {head}"))
    } else {
        (false, format!("FAIL {head}\n  {}", bad.join("\n  ")))
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One guest boot: a kernel image, the drivers to prove in it, and how to boot it.
#[derive(Clone, Copy)]
pub struct Boot<'a> {
    pub vmlinuz: &'a [u8],
    pub probes: &'a [VmProbe],
    /// Added to the kernel's command line.
    pub cmdline: &'a str,
    pub timeout: Duration,
    /// Where the guest's files are made.
    pub scratch: &'a Path,
    /// `tcg`, `kvm`, or `auto`.
    pub accel: &'a str,
    /// Falco's real userspace: the loader runs `sysdig --bpf=<probe>` (chrooted into the
    /// userspace's own root) for each probe over its workload, instead of loading the probe
    /// itself; each report carries `sysdig`, a [`userspace::Capture`].
    pub userspace: Option<&'a userspace::Userspace>,
    /// Boot the way a Secure Boot node boots: OVMF with Secure Boot on, shim, grub, the
    /// kernel's signed image and the certificate enrolled in shim's MOK list (see [`uefi`]);
    /// the firmware adds tens of seconds under TCG.
    pub firmware: Option<&'a uefi::Firmware>,
}

impl<'a> Boot<'a> {
    /// A plain boot: probeforge's loader, QEMU's `-kernel`, as `accel` says.
    pub fn new(
        vmlinuz: &'a [u8],
        probes: &'a [VmProbe],
        timeout: Duration,
        scratch: &'a Path,
        accel: &'a str,
    ) -> Boot<'a> {
        Boot {
            vmlinuz,
            probes,
            cmdline: "",
            timeout,
            scratch,
            accel,
            userspace: None,
            firmware: None,
        }
    }
}

/// Boots the kernel with the probes and collects the loader's reports. `accel` is `tcg`,
/// `kvm`, or `auto`: KVM when `/dev/kvm` opens and the guest boots under it within a short
/// deadline, else TCG (some hosts expose a KVM that cannot run a guest). A guest that prints
/// nothing at all is booted once more (seen under TCG: about one boot in ten hangs before the
/// kernel's first line); twice silent, the kernel did not start.
pub fn boot(b: &Boot) -> Result<Verdict, Error> {
    let (vmlinuz, timeout, firmware) = (b.vmlinuz, b.timeout, b.firmware);
    let mut accel = b.accel;
    if accel == "auto" {
        let native = image_arch(vmlinuz).is_some_and(|a| Some(a) == Arch::host());
        let kvm_ok = native
            && KVM_WORKS.get() != Some(&false)
            && std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
        if kvm_ok {
            // A KVM that cannot run a guest (nested, or a sandbox's) shows no kernel output at
            // all: give up on it after a few seconds, once per process, and use TCG.
            match boot_with(b, "kvm", KVM_FIRST_OUTPUT) {
                Ok(v) => {
                    let _ = KVM_WORKS.set(true);
                    return Ok(v);
                }
                Err(e @ Error::NoKernelOutput { .. }) => {
                    let _ = KVM_WORKS.set(false);
                    tracing::info!("falling back to TCG: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        accel = "tcg";
    }
    let first = match (accel, firmware) {
        ("tcg", None) => TCG_FIRST_OUTPUT,
        ("tcg", Some(_)) => TCG_FIRMWARE_FIRST_OUTPUT,
        _ => KVM_FIRST_OUTPUT,
    }
    .min(timeout);
    let mut silent = 0;
    loop {
        match boot_with(b, accel, first) {
            Err(Error::NoKernelOutput { accel, secs, qemu }) => {
                silent += 1;
                if silent == 2 {
                    return Err(Error::KernelDidNotStart {
                        accel,
                        secs,
                        qemu,
                        boots: silent,
                    });
                }
                tracing::info!("no console output within {secs}s under {accel}: booting again");
            }
            Ok(mut v) => {
                v.boots = silent + 1;
                return Ok(v);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether KVM ran a guest in this process (unset until tried).
static KVM_WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
/// How long a working KVM takes at most to print the kernel's banner.
const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(8);
/// How long TCG takes at most to print the kernel's banner (1-2 s measured on 2 idle cores; the
/// margin is for a loaded host).
const TCG_FIRST_OUTPUT: Duration = Duration::from_secs(60);
/// The same behind OVMF, shim and grub (the kernel's banner came after ~25 s on 2 idle cores).
const TCG_FIRMWARE_FIRST_OUTPUT: Duration = Duration::from_secs(180);

/// The I/O port of the x86 guest's `isa-debugcon`, the loader's verdict channel there.
const DEBUGCON_PORT: u16 = 0xe9;

/// The QEMU command line for a guest of `arch`, without kernel, initrd and command line: the
/// machine, the CPU, the console (serial, for people and for the kernel's own messages) and
/// the verdict channel, written by QEMU to `verdict`. Returns the arguments and the
/// `probeforge.channel=` the loader is told.
fn qemu_args(arch: Arch, accel: &str, verdict: &Path) -> (Vec<String>, &'static str, &'static str) {
    // QEMU option values escape a comma by doubling it.
    let chardev = format!(
        "file,id=verdict,path={}",
        verdict.display().to_string().replace(',', ",,")
    );
    let mut a: Vec<String> = Vec::new();
    let (channel, console) = match arch {
        Arch::Aarch64 => {
            // `max` implements every translation granule (the 16 KiB of Debian's -arm64-16k;
            // a Cortex-A57 has none and the kernel never starts); its pointer authentication
            // is the cheap implementation-defined one, else TCG spends ~2x on every boot. Its
            // FEAT_LPA2 (52-bit addresses with 4/16 KiB pages, which Debian's 6.12 arm64
            // kernels turn on) is off: with it, the first read of the ring info that Falco's
            // kernel module maps with `remap_pfn_range` faults (SIGBUS) in every consumer,
            // Debian's sysdig included; the CPUs Falco runs on have no LPA2 yet.
            // `PROBEFORGE_QEMU_AARCH64_CPU` chooses another (`max` proves an LPA2 machine).
            let cpu = if accel == "kvm" {
                "host".to_owned()
            } else {
                std::env::var("PROBEFORGE_QEMU_AARCH64_CPU")
                    .unwrap_or_else(|_| "max,pauth-impdef=on,lpa2=off".into())
            };
            a.extend(["-M".into(), "virt".into(), "-cpu".into(), cpu]);
            // Semihosting from user mode: the loader's `hlt #0xf000` reaches QEMU without any
            // guest driver or interrupt. It also lets the guest open host files and run host
            // commands, so QEMU's sandbox denies it processes of its own.
            a.extend([
                "-chardev".into(),
                chardev,
                "-semihosting-config".into(),
                "enable=on,target=native,userspace=on,chardev=verdict".into(),
                "-sandbox".into(),
                "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
            ]);
            ("semihosting", "ttyAMA0")
        }
        _ => {
            // The PC's debug console: one I/O port, no driver, no interrupt.
            a.extend([
                "-chardev".into(),
                chardev,
                "-device".into(),
                format!("isa-debugcon,iobase={DEBUGCON_PORT:#x},chardev=verdict"),
            ]);
            ("debugcon", "ttyS0")
        }
    };
    (a, channel, console)
}

fn boot_with(b: &Boot, accel: &str, first_output: Duration) -> Result<Verdict, Error> {
    let Boot {
        vmlinuz,
        probes,
        userspace,
        cmdline,
        timeout,
        scratch,
        firmware,
        ..
    } = *b;
    let arch = image_arch(vmlinuz).ok_or_else(|| Error::UnknownImage("kernel image".into()))?;
    let init = init_binary_for(arch)?;
    // The loader stops the userspace's workload rounds well before the host gives up.
    let deadline = timeout
        .saturating_sub(Duration::from_secs(45))
        .clamp(Duration::from_secs(20), Duration::from_secs(240));
    let initrd = initramfs_with(&init, arch, probes, userspace.map(|u| (u, deadline)))?;
    let dir = tempfile::Builder::new()
        .prefix("probeforge-vm-")
        .tempdir_in(scratch)
        .map_err(io(scratch))?;
    let (k, i) = (dir.path().join("vmlinuz"), dir.path().join("initrd.cpio"));
    let verdict_path = dir.path().join("verdict");
    std::fs::write(&k, vmlinuz).map_err(io(&k))?;
    std::fs::write(&i, initrd).map_err(io(&i))?;
    // x86_64: the PC machine, serial on ttyS0. aarch64: the `virt` machine (always TCG on an
    // x86 host), PL011 serial on ttyAMA0.
    let qemu = match arch {
        Arch::Aarch64 => std::env::var("PROBEFORGE_QEMU_AARCH64")
            .unwrap_or_else(|_| "qemu-system-aarch64".into()),
        _ => std::env::var("PROBEFORGE_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into()),
    };
    let (machine, channel, console) = qemu_args(arch, accel, &verdict_path);
    let described = format!("{qemu} {}", machine[..machine.len().min(4)].join(" "));
    let append =
        format!("console={console} panic=-1 oops=panic probeforge.channel={channel} {cmdline}");
    let mut cmd = Command::new(&qemu);
    cmd.args(&machine).args([
        "-accel",
        accel,
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
    ]);
    match firmware {
        None => {
            cmd.arg("-kernel")
                .arg(&k)
                .arg("-initrd")
                .arg(&i)
                .arg("-append")
                .arg(&append);
        }
        Some(fw) => {
            if arch != Arch::X86_64 {
                return Err(Error::Uefi(uefi::Error::Arch(arch)));
            }
            if !uefi::pe_signed(vmlinuz) {
                return Err(Error::Uefi(uefi::Error::UnsignedKernel));
            }
            let initrd = std::fs::read(&i).map_err(io(&i))?;
            let esp = uefi::esp(dir.path(), fw, vmlinuz, &initrd, &append)?;
            let (code, vars) = (dir.path().join("code.fd"), dir.path().join("vars.fd"));
            std::fs::write(&code, &fw.code).map_err(io(&code))?;
            std::fs::write(&vars, &fw.vars).map_err(io(&vars))?;
            let file = |p: &Path| p.display().to_string().replace(',', ",,");
            // The Secure Boot build of OVMF needs SMM (q35), and its flash locked to SMM.
            cmd.args(["-machine", "q35,smm=on"])
                .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    file(&code)
                ))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=1,file={}", file(&vars)))
                .arg("-drive")
                .arg(format!("if=virtio,format=raw,file={}", file(&esp)));
        }
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::NoQemu(qemu.clone(), e))?;
    let mut out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    // What QEMU wrote of the verdict channel so far (it creates the file at start).
    let mut verdict = Vec::new();
    let mut verdict_file: Option<std::fs::File> = None;
    let done = |b: &[u8]| b.windows(15).any(|w| w == b"PROBEFORGE-DONE");
    // The kernel's banner, its first line (firmware such as SeaBIOS may print before it).
    let started = |b: &[u8]| b.windows(13).any(|w| w == b"Linux version");
    let mut finished = false;
    let mut exited = false;
    while start.elapsed() < timeout {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(chunk) => console.extend_from_slice(&chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => exited = true,
            Err(_) => {}
        }
        if verdict_file.is_none() {
            verdict_file = std::fs::File::open(&verdict_path).ok();
        }
        if let Some(f) = verdict_file.as_mut() {
            f.read_to_end(&mut verdict).map_err(io(&verdict_path))?;
        }
        // The loader writes the verdict to the channel, or to the console where it could not
        // have one (lockdown).
        finished = done(&verdict) || done(&console);
        if !finished && start.elapsed() > first_output && !started(&console) {
            let _ = child.kill();
            let _ = child.wait();
            // Firmware and boot loaders print before the kernel: their last words say where
            // the boot stopped (a refused signature, a missing file).
            let said = String::from_utf8_lossy(&console).replace('\r', "");
            return Err(Error::NoKernelOutput {
                accel: accel.to_owned(),
                secs: first_output.as_secs(),
                qemu: match firmware {
                    Some(_) => format!("{described}; the firmware said:\n{}", tail(&said, 8)),
                    None => described,
                },
            });
        }
        if finished || exited {
            break;
        }
    }
    if finished {
        // Give the power-off a moment, then make sure QEMU is gone.
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(f) = verdict_file.as_mut() {
        let _ = f.read_to_end(&mut verdict);
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let text = String::from_utf8_lossy(&console).replace('\r', "");
    let verdict = String::from_utf8_lossy(&verdict).into_owned();
    let _ = std::io::stderr().flush();
    if !finished {
        if !started(&console) {
            // QEMU gone (or the time up) before the kernel's first line.
            return Err(Error::KernelDidNotStart {
                accel: accel.to_owned(),
                secs: start.elapsed().as_secs(),
                qemu: format!("{described}; QEMU said: {}", tail(&err, 5).trim()),
                boots: 1,
            });
        }
        let what = if exited {
            "QEMU exited early (kernel panic or bad image?)"
        } else {
            "timed out"
        };
        let mut t = format!("{}\n{}", tail(&text, 30), tail(&err, 5));
        if !verdict.is_empty() {
            t.push_str(&format!(
                "\nverdict channel ({channel}) tail:\n{}",
                tail(&verdict, 3)
            ));
        }
        return Err(Error::NoVerdict {
            secs: timeout.as_secs(),
            what: what.into(),
            tail: t,
        });
    }
    // Both sources: the loader wrote its lines to exactly one of them.
    let lines = || verdict.lines().chain(text.lines());
    let booted = lines()
        .find_map(|l| l.split("PROBEFORGE-BOOTED ").nth(1))
        .map(|s| s.trim().to_owned());
    let used = lines()
        .find_map(|l| l.split("PROBEFORGE-CHANNEL ").nth(1))
        .map_or_else(|| "?".to_owned(), |s| s.trim().to_owned());
    let mut reports: Vec<serde_json::Value> = lines()
        .filter_map(|l| l.split("PROBEFORGE-REPORT ").nth(1))
        .filter_map(|j| serde_json::from_str(j.trim()).ok())
        .collect();
    for r in &mut reports {
        if let (Some(u), Some(raw)) = (userspace, r.get("userspace").cloned()) {
            let running = booted.as_deref().unwrap_or("?");
            let c = userspace::check(&raw, running, u.suite.known_limits);
            r["sysdig"] = serde_json::to_value(c).unwrap_or_default();
            if let Some(o) = r.as_object_mut() {
                o.remove("userspace");
            }
            continue;
        }
        let tables = probes
            .iter()
            .find(|p| r["probe"].as_str() == Some(p.name.as_str()))
            .and_then(|p| p.tables.as_ref());
        if tables.is_some() && r.get("capture").is_none() && r["error"].is_null() {
            r["capture"] = serde_json::json!({"capture_error": "the loader reported no capture"});
        }
        if let (Some(t), Some(capture)) = (tables, r.get_mut("capture")) {
            let check = events::check(&t.schema, capture);
            // The raw events are decoded now; keep the decoded ones.
            if let Some(c) = capture.as_object_mut() {
                c.remove("events");
            }
            r["events"] = serde_json::to_value(check).unwrap_or_default();
        }
    }
    Ok(Verdict {
        accel: accel.to_owned(),
        channel: used,
        boots: 1,
        booted_release: booted,
        reports,
        seconds: start.elapsed().as_secs_f64(),
        console_tail: tail(&text, 15),
        userspace: userspace.cloned(),
        secure_boot: firmware.map(|f| f.report.clone()),
    })
}

/// Whether the guest's kernel trusts the enrolled certificate as a node's kernel does: booted
/// with Secure Boot on, the certificate (by its key id, as the kernel names a key) in the
/// `.machine` keyring, which `.secondary_trusted_keys` links and module signatures are checked
/// against. `Ok` says where it is; `Err` what is missing, from the loader's `trust` report.
pub fn mok_trusted(
    report: &serde_json::Value,
    cert: &crate::kmod::sign::CertIdentity,
) -> Result<String, String> {
    let t = &report["trust"];
    if t["secure_boot"] != true {
        return Err(format!(
            "the guest did not boot with Secure Boot on (SecureBoot: {})",
            t["secure_boot"]
        ));
    }
    let Some(id) = &cert.key_id else {
        return Err(format!(
            "the certificate `{}` has no subject key id to find it by",
            cert.subject
        ));
    };
    let holds = |ring: &str| {
        t["keyrings"][ring].as_array().is_some_and(|ks| {
            ks.iter()
                .any(|k| k.as_str().is_some_and(|k| k.contains(id.as_str())))
        })
    };
    if holds(".machine") {
        return Ok(format!(
            "Secure Boot on; `{}` (key {id}) in the kernel's .machine keyring",
            cert.subject
        ));
    }
    let elsewhere = if holds(".platform") {
        " (it is in .platform: the MOK list was not trusted, no MokListTrustedRT)"
    } else {
        ""
    };
    Err(format!(
        "`{}` (key {id}) is not in the kernel's .machine keyring{elsewhere}; MOK variables: {}",
        cert.subject, t["mok_variables"]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trust judgement reads the loader's report: Secure Boot on and the key in `.machine`
    /// pass; Secure Boot off, or the key only in `.platform` (shim did not say to trust the
    /// MOK list), fail and say so.
    #[test]
    fn the_mok_is_trusted_only_in_the_machine_keyring_under_secure_boot() {
        let cert = crate::kmod::sign::CertIdentity {
            subject: "CN=mok".into(),
            issuer: "CN=mok".into(),
            serial: "01".into(),
            key_id: Some("34f6259f".into()),
        };
        let report = |sb: serde_json::Value, ring: &str| {
            serde_json::json!({"trust": {
                "secure_boot": sb,
                "mok_variables": ["MokListRT"],
                "keyrings": {ring: ["mok: 34f6259f: X509.rsa 34f6259f []"]},
            }})
        };
        let ok = mok_trusted(&report(true.into(), ".machine"), &cert).unwrap();
        assert!(ok.contains(".machine"), "{ok}");
        let off = mok_trusted(&report(false.into(), ".machine"), &cert).unwrap_err();
        assert!(off.contains("Secure Boot"), "{off}");
        let platform = mok_trusted(&report(true.into(), ".platform"), &cert).unwrap_err();
        assert!(platform.contains("MokListTrustedRT"), "{platform}");
        let no_id = crate::kmod::sign::CertIdentity {
            key_id: None,
            ..cert.clone()
        };
        assert!(mok_trusted(&report(true.into(), ".machine"), &no_id).is_err());
    }
}

//! Which file Falco's driver loader asks for on a running system: falcoctl's `driver` command
//! (Falco 0.36 and later) and the `falco-driver-loader` script before it compute the same name,
//! `falco_<target-id>_<kernel-release>_<kernel-version>.{o,ko}`, from `/etc/os-release`,
//! `uname -r` and `uname -v` (and minikube's `/etc/VERSION`).
//!
//! This module is that rule and nothing else: pure, over strings. Listings name their kernels
//! through it and the build names its files through [`file_release`], so what is published is
//! what a loader downloads; the table test in `tests/naming.rs` holds every listing to it.

use std::sync::LazyLock;

use regex::Regex;

/// What a running system tells the loader.
#[derive(Debug, Clone, Copy, Default)]
pub struct System<'a> {
    /// `ID` of `/etc/os-release` (any case).
    pub os_id: &'a str,
    /// `VERSION_ID` of `/etc/os-release`.
    pub version_id: Option<&'a str>,
    /// `VARIANT_ID` of `/etc/os-release` (Bottlerocket).
    pub variant_id: Option<&'a str>,
    /// The text of `/etc/VERSION` (minikube's ISO writes it; its presence makes the system
    /// minikube whatever os-release says).
    pub etc_version: Option<&'a str>,
    pub uname_r: &'a str,
    pub uname_v: &'a str,
}

/// The three parts of the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub target_id: String,
    pub kernel_release: String,
    pub kernel_version: String,
}

static GENERIC_KV: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#(\d+)").expect("valid"));
static DEBIAN_ARCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-?(rt-|cloud-|)(amd64|arm64)").expect("valid"));
static DEBIAN_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+\.\d+\.\d+-\d+").expect("valid"));
static DEBIAN_FLAVOUR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d+\.\d+(?:\.\d+)?(?:-\d+|-0\.deb\d+\.\d+|\+deb\d+)-(.+)$").expect("valid")
});
static UBUNTU_FLAVOUR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-([a-zA-Z]+)(-.*)?$").expect("valid"));
static MINIKUBE_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+(\.\d+){2})").expect("valid"));

/// The part of a kernel release after its `x.y.z` (driverkit's `FullExtraversion`).
fn extraversion(release: &str) -> &str {
    let mut dots = 0;
    for (i, c) in release.char_indices() {
        match c {
            '0'..='9' => {}
            '.' if dots < 2 => dots += 1,
            // A dot followed by no number belongs to what follows (`6.8.arch1-1`).
            _ if release[..i].ends_with('.') => return &release[i - 1..],
            _ => return &release[i..],
        }
    }
    ""
}

/// The number after `#` in `uname -v`, or `uname -v` itself when it has none (as the loader
/// leaves it).
fn generic_kernel_version(uname_v: &str) -> String {
    GENERIC_KV
        .captures(uname_v)
        .map_or_else(|| uname_v.to_owned(), |c| c[1].to_owned())
}

/// Debian's rewrite: the loader takes the package version from `uname -v` (`Debian 6.1.55-1`)
/// and the flavour from `uname -r`, so `6.1.0-13-amd64` becomes `6.1.55-1-amd64` (kernel
/// version `1`). `None` when `uname -v` names no such version (the name is then `uname -r`).
pub fn debian_release(uname_r: &str, uname_v: &str) -> Option<String> {
    let version = DEBIAN_VERSION.find(uname_v)?.as_str();
    let arch = DEBIAN_ARCH
        .captures(extraversion(uname_r))
        .map(|c| format!("-{}{}", &c[1], &c[2]))
        .unwrap_or_default();
    Some(format!("{version}{arch}"))
}

/// The name the loader computes on `s`.
pub fn name(s: &System) -> Name {
    let mut id = s.os_id.to_ascii_lowercase();
    let minikube = s
        .etc_version
        .and_then(|v| MINIKUBE_VERSION.captures(v))
        .map(|c| c[1].to_owned());
    if minikube.is_some() {
        id = "minikube".into();
    }
    let generic_kv = generic_kernel_version(s.uname_v);
    let version_id = s.version_id.unwrap_or("");
    let (target_id, kernel_release, kernel_version) = match id.as_str() {
        "minikube" => (
            id.clone(),
            s.uname_r.to_owned(),
            format!("1_{}", minikube.unwrap_or_default()),
        ),
        "amzn" => (
            match version_id {
                "2" => "amazonlinux2",
                "2022" => "amazonlinux2022",
                "2023" => "amazonlinux2023",
                _ => "amazonlinux",
            }
            .to_owned(),
            s.uname_r.to_owned(),
            generic_kv,
        ),
        "ubuntu" => {
            let flavour = UBUNTU_FLAVOUR
                .captures(extraversion(s.uname_r))
                .map_or("generic".to_owned(), |c| c[1].to_owned());
            let kv = s.uname_v.trim_start_matches('#');
            let kv = kv.split(' ').next().unwrap_or("");
            (
                format!("ubuntu-{flavour}"),
                s.uname_r.to_owned(),
                kv.strip_suffix("-Ubuntu").unwrap_or(kv).to_owned(),
            )
        }
        "debian" => match debian_release(s.uname_r, s.uname_v) {
            Some(r) => (id.clone(), r, "1".to_owned()),
            None => (id.clone(), s.uname_r.to_owned(), generic_kv),
        },
        "talos" => (id.clone(), s.uname_r.to_owned(), format!("1_{version_id}")),
        "bottlerocket" => {
            let variant = s.variant_id.unwrap_or("").split('-').next().unwrap_or("");
            (
                id.clone(),
                s.uname_r.to_owned(),
                format!("1_{version_id}-{variant}"),
            )
        }
        // The release in the name is Flatcar's own version, not the kernel's.
        "flatcar" => (id.clone(), version_id.to_owned(), generic_kv),
        // Every other ID is its own target id, verbatim (`opensuse-leap`, `sles`, `photon`,
        // `alinux`, `arch`, `rocky`, `centos`, `rhel`, `cos`, ...).
        _ => (id.clone(), s.uname_r.to_owned(), generic_kv),
    };
    Name {
        target_id,
        kernel_release,
        kernel_version,
    }
}

/// The kernel release in the file name of a Debian kernel: its package version and flavour
/// (`6.1.0-47-amd64` at `6.1.170-3` -> `6.1.170-3-amd64`), as Falco's own driver repository
/// names it (kernel-crawler's `kernelrelease`). For every kernel of a release's own line this
/// is what the loader asks for ([`debian_release`]); a backport or security rebuild for an
/// older release (`6.12.95-1~bpo12+1`, `6.1.170-3~deb11u1`) keeps its own name, where the
/// loader asks for the native kernel's file (it cannot tell the two apart). `None` when the
/// release has no Debian flavour.
pub fn debian_file_release(uname_r: &str, package_version: &str) -> Option<String> {
    let flavour = DEBIAN_FLAVOUR.captures(uname_r)?;
    let version = package_version
        .split_once(':')
        .map_or(package_version, |(_, v)| v);
    Some(format!("{version}-{}", &flavour[1]))
}

/// The release Falco's loader asks for on the Debian kernel that Falco's repository names
/// `file_release` (package version and flavour), when that is another name: a backport or a
/// rebuild for an older release (`7.3.4-1~bpo13+1-amd64`) is asked for by the first `X.Y.Z-N`
/// of its version (`7.3.4-1-amd64`), since the loader reads only that much of `uname -v`.
/// `None` when the loader asks for `file_release` itself, and when it would ask for another
/// flavour's name (`-arm64-16k` kernels are asked for as `-arm64`: a name that is not theirs).
pub fn debian_alias(file_release: &str) -> Option<String> {
    static SPLIT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\d+\.\d+(?:\.\d+)?-[^-]+)-([a-z][a-z0-9-]*)$").expect("valid")
    });
    let c = SPLIT.captures(file_release)?;
    let (version, flavour) = (&c[1], &c[2]);
    // The loader's own rule, on a system whose `uname -v` states this version and whose
    // `uname -r` ends in this flavour.
    let asked = debian_release(
        &format!("0.0.0-0-{flavour}"),
        &format!("#1 SMP Debian {version}"),
    )?;
    (asked != file_release && asked.ends_with(&format!("-{flavour}"))).then_some(asked)
}

/// The kernel release in the file name of a kernel built for `target_id`, from the kernel's
/// own `uname -r` and `uname -v`: Debian's names carry the package version `uname -v` states
/// (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.170-3 (2026-05-08)`); every other target's is `uname -r`.
pub fn file_release(target_id: &str, uname_r: &str, uname_v: Option<&str>) -> String {
    let package_version = uname_v
        .and_then(|v| v.split_once(" Debian "))
        .and_then(|(_, rest)| rest.split_whitespace().next());
    match (target_id, package_version) {
        ("debian", Some(v)) => {
            debian_file_release(uname_r, v).unwrap_or_else(|| uname_r.to_owned())
        }
        _ => uname_r.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys<'a>(id: &'a str, r: &'a str, v: &'a str) -> System<'a> {
        System {
            os_id: id,
            uname_r: r,
            uname_v: v,
            ..System::default()
        }
    }

    /// falcoctl's own cases (its `*_test.go`), one per rule.
    #[test]
    fn the_loaders_rules() {
        let n = |s: System| {
            let n = name(&s);
            (n.target_id, n.kernel_release, n.kernel_version)
        };
        let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            n(sys(
                "debian",
                "6.1.0-13-amd64",
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)"
            )),
            t("debian", "6.1.55-1-amd64", "1")
        );
        assert_eq!(
            n(sys(
                "debian",
                "5.10.0-0.deb10.22-rt-amd64",
                "#1 SMP PREEMPT_DYNAMIC Debian 5.10.178-3"
            )),
            t("debian", "5.10.178-3-rt-amd64", "1")
        );
        assert_eq!(
            n(sys(
                "debian",
                "6.12.57+deb13-cloud-arm64",
                "#1 SMP Debian 6.12.57-1~bpo12+1 (2025-11-01)"
            )),
            t("debian", "6.12.57-1-cloud-arm64", "1")
        );
        assert_eq!(
            n(sys("debian", "5.10.0-0", "#39 SMP PREEMPT_DYNAMIC")),
            t("debian", "5.10.0-0", "39")
        );
        assert_eq!(
            n(sys(
                "ubuntu",
                "5.0.0-1028-aws-5.0",
                "#26~22.04.1-Ubuntu SMP Mon Apr 24 01:58:15 UTC 2023"
            )),
            t("ubuntu-aws", "5.0.0-1028-aws-5.0", "26~22.04.1")
        );
        assert_eq!(
            n(sys("ubuntu", "5.0.0", "#26")),
            t("ubuntu-generic", "5.0.0", "26")
        );
        assert_eq!(
            n(sys("ubuntu", "6.5.0-9-lowlatency", "#9.1")),
            t("ubuntu-lowlatency", "6.5.0-9-lowlatency", "9.1")
        );
        let amzn = |v: &'static str| System {
            version_id: Some(v),
            ..sys("amzn", "4.14.26-46.32.amzn1.x86_64", "#1 SMP")
        };
        assert_eq!(n(amzn("2")).0, "amazonlinux2");
        assert_eq!(n(amzn("2022")).0, "amazonlinux2022");
        assert_eq!(n(amzn("2023")).0, "amazonlinux2023");
        assert_eq!(
            n(amzn("2018.03")),
            t("amazonlinux", "4.14.26-46.32.amzn1.x86_64", "1")
        );
        assert_eq!(
            n(System {
                version_id: Some("1.11.0"),
                variant_id: Some("aws-k8s-1.15"),
                ..sys("bottlerocket", "5.10.199", "#1 SMP")
            }),
            t("bottlerocket", "5.10.199", "1_1.11.0-aws")
        );
        assert_eq!(
            n(System {
                version_id: Some("v1.7.0"),
                ..sys("talos", "6.6.45-talos", "#1 SMP")
            }),
            t("talos", "6.6.45-talos", "1_v1.7.0")
        );
        assert_eq!(
            n(System {
                version_id: Some("3815.2.0"),
                ..sys("flatcar", "6.1.77-flatcar", "#1 SMP PREEMPT_DYNAMIC")
            }),
            t("flatcar", "3815.2.0", "1")
        );
        // minikube wins over whatever os-release says (its ISO is buildroot).
        assert_eq!(
            n(System {
                etc_version: Some("v1.26.0-1655407986-14197\n"),
                ..sys("buildroot", "5.10.57", "#1 SMP")
            }),
            t("minikube", "5.10.57", "1_1.26.0")
        );
        // Everything else: os-release's ID as is, `#N` of uname -v.
        assert_eq!(
            n(sys(
                "opensuse-leap",
                "5.14.21-150500.55.39-default",
                "#1 SMP PREEMPT_DYNAMIC Wed Nov 15 2023 (a1b2c3d)"
            )),
            t("opensuse-leap", "5.14.21-150500.55.39-default", "1")
        );
        assert_eq!(
            n(sys("Photon", "4.19.283-3.ph3", "#1-photon SMP")),
            t("photon", "4.19.283-3.ph3", "1")
        );
        assert_eq!(
            n(sys("arch", "6.7.2-arch1-2", "#1 SMP PREEMPT_DYNAMIC")),
            t("arch", "6.7.2-arch1-2", "1")
        );
        assert_eq!(n(sys("rhel", "5.14.0-1.el9", "malformed")).2, "malformed");
    }

    /// Debian's file names are Falco's repository's (package version and flavour): what the
    /// loader asks for on every kernel of a release's own line.
    #[test]
    fn debian_file_names_are_what_the_loader_asks_for_on_native_kernels() {
        let cases = [
            ("6.1.0-47-amd64", "6.1.170-3", "6.1.170-3-amd64"),
            ("6.1.0-47-cloud-amd64", "6.1.170-3", "6.1.170-3-cloud-amd64"),
            ("5.10.0-32-rt-arm64", "5.10.223-1", "5.10.223-1-rt-arm64"),
            ("6.12.57+deb13-amd64", "6.12.57-1", "6.12.57-1-amd64"),
            ("4.19.0-23-amd64", "4.19.269-1", "4.19.269-1-amd64"),
        ];
        for (r, pv, want) in cases {
            let uname_v = format!("#1 SMP PREEMPT_DYNAMIC Debian {pv} (2026-05-08)");
            assert_eq!(file_release("debian", r, Some(&uname_v)), want);
            let n = name(&sys("debian", r, &uname_v));
            assert_eq!(
                (n.kernel_release.as_str(), n.kernel_version.as_str()),
                (want, "1")
            );
        }
        // Rebuilds for an older release keep their own name (the loader asks for the native
        // kernel's file: `6.1.170-3-amd64`).
        let v = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.170-3~deb11u1 (2026-05-08)";
        assert_eq!(
            file_release("debian", "6.1.0-0.deb11.47-amd64", Some(v)),
            "6.1.170-3~deb11u1-amd64"
        );
        assert_eq!(
            name(&sys("debian", "6.1.0-0.deb11.47-amd64", v)).kernel_release,
            "6.1.170-3-amd64"
        );
        assert_eq!(
            file_release(
                "debian",
                "7.3.4+deb13-arm64-16k",
                Some("#1 SMP Debian 7.3.4-1~bpo13+1 (2026-11-15)")
            ),
            "7.3.4-1~bpo13+1-arm64-16k"
        );
        // Without Debian's version in uname -v, or for another target: uname -r.
        assert_eq!(
            file_release("debian", "6.1.0-47-amd64", Some("#1 SMP")),
            "6.1.0-47-amd64"
        );
        assert_eq!(
            file_release("debian", "6.1.0-47-amd64", None),
            "6.1.0-47-amd64"
        );
        assert_eq!(
            file_release("ubuntu-generic", "6.8.0-45-generic", Some("#45-Ubuntu SMP")),
            "6.8.0-45-generic"
        );
    }

    #[test]
    fn a_backport_is_aliased_under_the_name_the_loader_asks_for() {
        assert_eq!(
            debian_alias("7.3.4-1~bpo13+1-amd64").as_deref(),
            Some("7.3.4-1-amd64")
        );
        assert_eq!(
            debian_alias("6.1.170-3~deb11u1-cloud-amd64").as_deref(),
            Some("6.1.170-3-cloud-amd64")
        );
        assert_eq!(
            debian_alias("6.12.57-1~bpo12+1-rt-arm64").as_deref(),
            Some("6.12.57-1-rt-arm64")
        );
        // The loader asks for native kernels by their own name: no alias.
        assert_eq!(debian_alias("6.1.176-1-amd64"), None);
        // A 16k kernel is asked for as plain `-arm64`: another kernel's name, never aliased.
        assert_eq!(debian_alias("7.3.4-1~bpo13+1-arm64-16k"), None);
        assert_eq!(debian_alias("6.1.0-50-amd64-unsigned"), None);
        assert_eq!(debian_alias("not-a-release"), None);
    }

    #[test]
    fn extraversion_is_what_follows_x_y_z() {
        assert_eq!(extraversion("6.1.0-13-amd64"), "-13-amd64");
        assert_eq!(extraversion("6.12.57+deb13-amd64"), "+deb13-amd64");
        assert_eq!(extraversion("6.8.arch1-1"), ".arch1-1");
        assert_eq!(extraversion("5.10.0.arch1-1"), ".arch1-1");
        assert_eq!(extraversion("5.10.57"), "");
    }
}

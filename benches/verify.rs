//! Boot-to-verdict under QEMU TCG, per kernel and per Debian flavour: boot the Debian kernel
//! with the real Falco probe (libs 0.20.0) and run all its programs through the verifier; then
//! again with event capture (tables filled, perf rings, workload, events decoded). Goal: under
//! 15 s. Every flavour Debian ships is here (amd64, cloud-amd64, rt-amd64, arm64, arm64-16k,
//! cloud-arm64, rt-arm64), and a 7.x kernel from its `linux-binary-unsigned-*` package.
//! Then Falco's real userspace (`verify --userspace sysdig`): both Debian pairs, bookworm's
//! sysdig 0.29.3 with the 2022 dkms driver on bullseye's point-release 5.10, and forky's sysdig
//! 0.41.4 with 9.1.0+driver (forky's dkms 0.23.2) on 6.12, boot to verdict and the userspace's
//! resolution (its dependency closure from the suite's index, warm cache).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;
#[path = "../tests/common/images.rs"]
mod images;

use probeforge::kernel::Arch;

fn main() {
    sysdig_pairs();
    let driver = common::libs_0_20_0();
    let tc = probeforge::toolchain::Toolchain::find(None, None).unwrap();
    let tt = common::tmpdir();
    let tables = |arch| {
        probeforge::verify::events::tables_from_source(&driver, arch, &tc, tt.path())
            .unwrap()
            .1
    };
    let (x86, arm) = (tables(Arch::X86_64), tables(Arch::Aarch64));
    // (suite, series, flavour, arch); the plain flavours of the three releases first.
    let kernels: &[(&str, &str, &str, Arch)] = &[
        ("bullseye", "5.10.", "amd64", Arch::X86_64),
        ("bookworm", "6.1.", "amd64", Arch::X86_64),
        ("trixie", "6.12.", "amd64", Arch::X86_64),
        ("bookworm", "6.1.", "arm64", Arch::Aarch64),
        ("bookworm", "6.1.", "rt-amd64", Arch::X86_64),
        ("trixie", "6.12.", "cloud-amd64", Arch::X86_64),
        ("trixie", "6.12.", "rt-amd64", Arch::X86_64),
        ("trixie", "6.12.", "arm64", Arch::Aarch64),
        ("trixie", "6.12.", "arm64-16k", Arch::Aarch64),
        ("trixie", "6.12.", "cloud-arm64", Arch::Aarch64),
        ("trixie", "6.12.", "rt-arm64", Arch::Aarch64),
        ("trixie", "7.", "amd64", Arch::X86_64),
    ];
    for &(suite, series, flavour, arch) in kernels {
        let tables = if arch == Arch::X86_64 { &x86 } else { &arm };
        let (k, files) = if series == "7." {
            common::debian_7x_kernel(arch)
        } else {
            images::debian_flavour_kernel(suite, series, flavour, arch)
        };
        let t = common::tmpdir();
        let probe = images::libs_probe(&k, &files, t.path());
        let package = if series == "7." {
            format!("linux-binary-unsigned-{}", k.release)
        } else {
            format!("linux-image-{}-unsigned", k.release)
        };
        let image = common::debian_package(&format!("debian-{suite}"), arch, &package);
        let vmlinuz = probeforge::verify::kernel_image(&image).unwrap();
        std::env::set_var(
            "PROBEFORGE_INIT",
            common::bin().with_file_name("probeforge-init"),
        );
        let mut secs = Vec::new();
        for with_events in [false, true] {
            let p = probeforge::verify::VmProbe {
                name: "p.o".into(),
                bytes: std::fs::read(&probe).unwrap(),
                tables: with_events.then(|| tables.clone()),
            };
            let probes = [p];
            let v = probeforge::verify::boot(&probeforge::verify::Boot::new(
                &vmlinuz,
                &probes,
                std::time::Duration::from_secs(300),
                t.path(),
                "tcg",
            ))
            .unwrap();
            let r = &v.reports[0];
            let ok = probeforge::verify::judge(r).ok;
            assert!(ok, "{r}");
            println!(
                "{:<30} boot-to-verdict {:>6.1} s  ({}/{} programs loaded{}; verdict over {})  goal < 15 s",
                k.release,
                v.seconds,
                r["loaded"],
                r["programs"],
                if with_events {
                    format!(", {} events decoded", r["events"]["decoded"])
                } else {
                    String::new()
                },
                v.channel
            );
            secs.push(v.seconds);
        }
        println!(
            "{:<30} capture costs x{:.2} of load-only",
            "",
            secs[1] / secs[0]
        );
    }
}

/// The Debian sysdig pairs: (kernel's target, its suite or point release, series, driver,
/// driver version, sysdig's suite).
fn sysdig_pairs() {
    let pairs = [
        (
            "debian-bullseye",
            "bullseye",
            "5.10.",
            common::scap_dkms(),
            "0.1.1dev+git20220316.e5c53d64",
            "bookworm",
        ),
        (
            "debian-trixie",
            "trixie",
            "6.12.",
            drivers::scap_dkms_0_23_2(),
            "9.1.0+driver",
            "forky",
        ),
    ];
    std::env::set_var(
        "PROBEFORGE_INIT",
        common::bin().with_file_name("probeforge-init"),
    );
    for (target, origin, series, driver, version, suite) in pairs {
        let mut ks: Vec<_> = common::lister()
            .list(target, &[Arch::X86_64])
            .unwrap()
            .into_iter()
            .filter(|k| {
                k.origin == origin
                    && k.release.starts_with(series)
                    && images::flavour_of(&k.release) == "amd64"
            })
            .collect();
        ks.sort_by(|a, b| {
            probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
        });
        let k = probeforge::repo::Lister::for_build(&ks[0]);
        let files = common::lister().fetch(&k).unwrap();
        let t = common::tmpdir();
        let out = t.path().join("out");
        let mut a = vec![
            "build".to_owned(),
            "--driver-source".into(),
            driver.display().to_string(),
            "--driver-version".into(),
            version.into(),
            "-o".into(),
            out.display().to_string(),
            "--headers".into(),
        ];
        a.extend(
            common::header_files(&k, &files)
                .iter()
                .map(|h| h.display().to_string()),
        );
        let (code, _, err) = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
        let probe = std::fs::read_dir(&out)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let p = probeforge::verify::VmProbe {
            name: "p.o".into(),
            bytes: std::fs::read(&probe).unwrap(),
            tables: None,
        };
        let started = std::time::Instant::now();
        let request = probeforge::verify::userspace::Request { suite: None };
        let u = probeforge::verify::userspace::prepare(
            &common::lister(),
            &request,
            std::slice::from_ref(&p),
            Arch::X86_64,
        )
        .unwrap();
        let resolve = started.elapsed().as_secs_f64();
        assert_eq!(u.suite.name, suite);
        let image = common::debian_package(
            target,
            Arch::X86_64,
            &format!("linux-image-{}-unsigned", k.release),
        );
        let vmlinuz = probeforge::verify::kernel_image(&image).unwrap();
        let probes = [p];
        let v = probeforge::verify::boot(&probeforge::verify::Boot {
            userspace: Some(&u),
            ..probeforge::verify::Boot::new(
                &vmlinuz,
                &probes,
                std::time::Duration::from_secs(300),
                t.path(),
                "tcg",
            )
        })
        .unwrap();
        let r = &v.reports[0];
        let probeforge::verify::Judgement { ok, line } = probeforge::verify::judge(r);
        assert!(ok, "{line}");
        println!(
            "{:<30} sysdig {} ({}) boot-to-verdict {:>6.1} s  (capture seen after {:.1} s, {} workload rounds; {} packages, {:.1} MB in the VM, resolved in {:.1} s)",
            k.release,
            u.sysdig_version,
            suite,
            v.seconds,
            r["sysdig"]["seconds_to_capture"].as_f64().unwrap_or(f64::NAN),
            r["sysdig"]["rounds"],
            u.packages.len(),
            u.bytes as f64 / 1e6,
            resolve
        );
    }
}

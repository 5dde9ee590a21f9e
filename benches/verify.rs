//! Boot-to-verdict under QEMU TCG, per kernel and per Debian flavour: boot the Debian kernel
//! with the real Falco probe (libs 0.20.0) and run all its programs through the verifier; then
//! again with event capture (tables filled, perf rings, workload, events decoded). Goal: under
//! 15 s. Every flavour Debian ships is here (amd64, cloud-amd64, rt-amd64, arm64, arm64-16k,
//! cloud-arm64, rt-arm64), and a 7.x kernel from its `linux-binary-unsigned-*` package.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/images.rs"]
mod images;

use probeforge::kernel::Arch;

fn main() {
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
            let v = probeforge::verify::boot(
                &vmlinuz,
                &[p],
                "",
                std::time::Duration::from_secs(300),
                t.path(),
                "tcg",
            )
            .unwrap();
            let r = &v.reports[0];
            let (ok, _) = probeforge::verify::judge(r);
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

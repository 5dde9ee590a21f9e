//! Boot-to-verdict under QEMU TCG, per kernel: boot the Debian kernel with the real Falco
//! probe (libs 0.20.0) and run all its programs through the verifier; then again with event
//! capture (tables filled, perf rings, workload, events decoded). Goal: under 15 s.

#[path = "../tests/common/mod.rs"]
mod common;

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
    for (suite, arch) in [
        ("bullseye", Arch::X86_64),
        ("bookworm", Arch::X86_64),
        ("trixie", Arch::X86_64),
        ("bookworm", Arch::Aarch64),
    ] {
        let tables = if arch == Arch::X86_64 { &x86 } else { &arm };
        let (k, files) = common::debian_kernel(suite, arch);
        let t = common::tmpdir();
        let a = common::build_args(&common::header_files(&k, &files), &driver, t.path());
        let (code, _, err) = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
        let probe = std::fs::read_dir(t.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let image = common::debian_package(
            &format!("debian-{suite}"),
            arch,
            &format!("linux-image-{}-unsigned", k.release),
        );
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
                "{:<24} boot-to-verdict {:>6.1} s  ({}/{} programs loaded{})  goal < 15 s",
                k.release,
                v.seconds,
                r["loaded"],
                r["programs"],
                if with_events {
                    format!(", {} events decoded", r["events"]["decoded"])
                } else {
                    String::new()
                }
            );
            secs.push(v.seconds);
        }
        println!(
            "{:<24} capture costs x{:.2} of load-only",
            "",
            secs[1] / secs[0]
        );
    }
}

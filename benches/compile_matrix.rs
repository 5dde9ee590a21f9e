//! The whole matrix of `tests/compile.rs`'s slice: every suite and arch against kbuild for
//! both driver layouts (libs 0.20.0 as 8.0.0+driver, and the 2022 dkms driver), and the 7.x
//! kernels. Each cell asserts what the test asserts (the same bytes as kbuild, or every section
//! but debug info's paths on 7.x) and prints its wall time; the ratio is native's share of the
//! cell (native build / native + kbuild reference).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use probeforge::kernel::Arch;

fn main() {
    let cells: &[(&str, Arch, bool)] = &[
        ("bullseye", Arch::X86_64, false),
        ("bookworm", Arch::X86_64, false),
        ("trixie", Arch::X86_64, false),
        ("bookworm", Arch::Aarch64, false),
        ("trixie", Arch::Aarch64, false),
        ("bullseye", Arch::X86_64, true),
        ("bookworm", Arch::X86_64, true),
        ("trixie", Arch::X86_64, true),
    ];
    let total = Instant::now();
    println!(
        "{:<10} {:<8} {:<12} {:>8}",
        "suite", "arch", "driver", "wall"
    );
    for &(suite, arch, dkms) in cells {
        let t = Instant::now();
        common::matrix::same_as_kbuild(suite, arch, dkms);
        println!(
            "{suite:<10} {:<8} {:<12} {:>7.1}s  same bytes as kbuild",
            arch.uname_m(),
            if dkms { "dkms-2022" } else { "8.0.0" },
            t.elapsed().as_secs_f64()
        );
    }
    for &(arch, dkms) in &[
        (Arch::X86_64, false),
        (Arch::Aarch64, false),
        (Arch::X86_64, true),
    ] {
        let t = Instant::now();
        common::matrix::build_7x(arch, dkms);
        println!(
            "{:<10} {:<8} {:<12} {:>7.1}s  same sections as kbuild",
            "7.x",
            arch.uname_m(),
            if dkms { "dkms-2022" } else { "8.0.0" },
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "{} cells in {:.0} s",
        cells.len() + 3,
        total.elapsed().as_secs_f64()
    );
}

//! The site at size: a synthetic repository index of 10,000 entries (7,000 published probes
//! and modules, 3,000 kept failures, over 12,000 shipped kernels of 6 targets and 2 arches:
//! made-up records, real shapes; the figure is about size, not content), written by
//! `probeforge::site::write`, then loaded by headless chromium (`--dump-dom`, a fresh profile
//! each time) against a trivial page as the baseline (browser start-up, the same for both).
//! Prints, over several runs, min/median wall time of each, their difference and ratio, the
//! page's own time to its first screen (`performance.now()` at the end of its script, from
//! navigation start), and the sizes of the page's code and of its data.
//!
//! `cargo bench --bench site` (~30 s). `SITE_BENCH_RUNS` (default 7) sets the runs.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::time::Instant;

use probeforge::publish::{FailureRecord, ProbeMeta};
use probeforge::site::{Input, Shipped, Times};

fn input(entries: usize) -> Input {
    let targets = [
        ("debian-bullseye", "debian", "5.10.0"),
        ("debian-bookworm", "debian", "6.1.0"),
        ("debian-trixie", "debian", "6.12.0"),
        ("ubuntu-jammy", "ubuntu-generic", "5.15.0"),
        ("ubuntu-noble", "ubuntu-generic", "6.8.0"),
        ("amazonlinux2023", "amazonlinux2023", "6.1.0"),
    ];
    let mut shipped = Vec::new();
    for (t, id, base) in targets {
        for arch in ["x86_64", "aarch64"] {
            let flavour = if arch == "x86_64" { "amd64" } else { "arm64" };
            for n in 0..1000 {
                shipped.push(Shipped {
                    target: t.into(),
                    target_id: id.into(),
                    arch: arch.into(),
                    release: format!("{base}-{n}-{flavour}"),
                    kernel_version: "1".into(),
                    file_release: None,
                });
            }
        }
    }
    let mut probes = Vec::new();
    let mut failures = Vec::new();
    for (i, k) in shipped.iter().enumerate().take(entries) {
        let (dv, ext) = match i % 3 {
            0 => ("8.0.0+driver", "o"),
            1 => ("9.1.0+driver", "o"),
            _ => ("9.1.0+driver", "ko"),
        };
        let file = format!(
            "falco_{}_{}_{}.{ext}",
            k.target_id, k.release, k.kernel_version
        );
        if i % 10 < 7 {
            probes.push(ProbeMeta {
                driver_version: dv.into(),
                arch: k.arch.clone(),
                target_id: k.target_id.clone(),
                kernel_release: k.release.clone(),
                kernel_version: k.kernel_version.clone(),
                file,
                size: 4_000_000 + i as u64,
                sha256: format!("{:064x}", i * 2654435761),
                inputs: vec![],
                driver_source_sha256: String::new(),
                patches: vec![],
                toolchain: String::new(),
                flags_sha256: String::new(),
                built_at: "2026-12-01T00:00:00Z".into(),
                unsigned_metadata: false,
                verified: (i % 5 == 0).then(|| "ok: 42 programs loaded".into()),
                signed_by: None,
            });
        } else {
            failures.push(FailureRecord {
                driver_version: dv.into(),
                arch: k.arch.clone(),
                driver: if ext == "ko" { "kmod" } else { "ebpf" }.into(),
                target_id: k.target_id.clone(),
                kernel_release: k.release.clone(),
                kernel_version: k.kernel_version.clone(),
                file,
                reason: "clang failed: exit status 1: error: no member named 'x' in 'struct task_struct'".into(),
                log: String::new(),
                inputs: vec![],
                at: "2026-12-01T00:00:00Z".into(),
            });
        }
    }
    Input {
        probes,
        failures,
        shipped,
        times: Some(Times {
            seconds: (0..entries).map(|i| 20.0 + (i % 97) as f64).collect(),
            run_seconds: 3600.0,
        }),
        generated: None,
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let runs: usize = std::env::var("SITE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();
    let input = input(10_000);
    let t = Instant::now();
    let w = probeforge::site::write(dir.path(), &input).unwrap();
    let write_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "site of {} probes + {} failures over {} kernels: written in {write_ms:.0} ms; page code {} bytes, data {} bytes",
        w.published, w.failed, w.kernels, w.code_bytes, w.data_bytes
    );
    let trivial = dir.path().join("trivial.html");
    std::fs::write(
        &trivial,
        "<!doctype html><title>t</title><p>trivial</p><script>document.body.setAttribute('data-rendered-ms', Math.round(performance.now()))</script>",
    )
    .unwrap();
    let page = browser::file_url(&dir.path().join("index.html"));
    let base = browser::file_url(&trivial);
    let (mut site, mut triv, mut inpage) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for (url, times) in [(&base, &mut triv), (&page, &mut site)] {
            let t = Instant::now();
            let d = browser::dump_dom(url);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(d.console.is_empty(), "{:?}", d.console);
            let ms: f64 = d
                .dom
                .split("data-rendered-ms=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse().ok())
                .expect("the page drew its first screen");
            if url == &page {
                assert!(d.dom.contains("class=\"published\""));
                inpage.push(ms);
            }
        }
    }
    let (smin, smed) = stats(site);
    let (tmin, tmed) = stats(triv);
    let (pmin, pmed) = stats(inpage);
    println!("headless chromium --dump-dom over {runs} runs (min / median, ms):");
    println!("  trivial page        {tmin:7.0} / {tmed:7.0}");
    println!("  site, 10,000 entries {smin:6.0} / {smed:7.0}");
    println!(
        "  difference          {:7.0} / {:7.0}   ratio {:.2}",
        smin - tmin,
        smed - tmed,
        smed / tmed
    );
    println!("  first screen drawn (in page, from navigation start): {pmin:.0} / {pmed:.0} ms");
}

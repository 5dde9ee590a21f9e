//! The repository's site, rendered by a real browser (Debian's headless chromium) from a
//! loopback static server and from `file://`: a repository of real Debian kernels with one
//! published probe, one recorded failure (a kernel module no compiler here can build) and one
//! kernel listed but not built.

mod common;

use common::browser::{dump_dom, file_url, serve};
use common::*;
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

/// The harness sees a page's errors: a deliberate console error and an uncaught one are
/// reported (else "no console errors" below would prove nothing).
#[test]
fn the_browser_harness_reports_console_errors() {
    let t = tmpdir();
    let page = t.path().join("bad.html");
    std::fs::write(
        &page,
        "<!doctype html><p id=x>before</p><script>document.getElementById('x').textContent='ran';console.error('deliberate');nosuchfn();</script>",
    )
    .unwrap();
    let d = dump_dom(&file_url(&page));
    assert!(d.dom.contains(">ran<"), "{}", d.dom);
    assert!(
        d.console.iter().any(|l| l.contains("deliberate"))
            && d.console
                .iter()
                .any(|l| l.contains("Uncaught ReferenceError")),
        "{}",
        d.stderr
    );
}

fn plain_arm64(k: &KernelRecord) -> bool {
    k.release.ends_with("-arm64") && !k.release.contains("-cloud-") && !k.release.contains("-rt-")
}

fn plain_amd64(k: &KernelRecord) -> bool {
    k.release.ends_with("-amd64") && !k.release.contains("-cloud-") && !k.release.contains("-rt-")
}

fn newest(mut ks: Vec<KernelRecord>) -> KernelRecord {
    ks.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    ks.into_iter().next().expect("a kernel")
}

fn site_json(args: &[String]) -> serde_json::Value {
    let (code, out, err) = run(args);
    assert!(code == 0 || code == 1, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v
}

/// A published probe, a kept failure and a kernel not built, each in the matrix; `?q=` finds
/// the published one by its release (with Falco's file name) and the failed one with its
/// reason; the same page from a loopback server and from `file://`, with no console error.
#[test]
fn site_shows_published_failed_and_not_built_in_a_real_browser() {
    // Published: the newest bullseye amd64 kernel's probe (driver 8.0.0+driver).
    let (published, _) = debian_kernel("bullseye", Arch::X86_64);
    // Not built: another bullseye amd64 kernel, listed in a plan given to `site --from`.
    let not_built = newest(
        lister()
            .list("debian-bullseye", &[Arch::X86_64])
            .expect("listing debian-bullseye")
            .into_iter()
            .filter(|k| plain_amd64(k) && k.release != published.release)
            .collect(),
    );
    // Failed: bookworm's newest plain arm64 kernel module under `--exact-compiler`: its
    // headers name `gcc-12 (Debian 12.2.0-14+deb12u1)`, and bookworm's only arm64 compiler on
    // this x86_64 host is the cross build of 12.2.0-14 (`12.2.0-14cross1`).
    let failed = newest(
        lister()
            .list("debian-bookworm", &[Arch::Aarch64])
            .expect("listing debian-bookworm")
            .into_iter()
            .filter(|k| k.origin == "bookworm" && plain_arm64(k))
            .collect(),
    );
    let repo = tmpdir();
    let r = repo.path();
    let plan = r.join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec(
            &serde_json::json!({"format": "probeforge-plan-1", "kernels": [not_built]}),
        )
        .unwrap(),
    )
    .unwrap();
    let mut a: Vec<String> = ["site", "--repo"].map(String::from).to_vec();
    a.extend([
        r.display().to_string(),
        "--from".into(),
        plan.display().to_string(),
    ]);
    a.push("--json".into());
    let w = site_json(&a);
    assert_eq!(w["kernels"], 1, "{w:#}");

    let only = |k: &KernelRecord| format!("^{}$", regex::escape(&k.release));
    let mut a = build_all_args(
        &["debian-bullseye", "--arch", "x86_64"],
        &only(&published),
        r,
    );
    a.push("--site".into());
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{err}\n{out}");
    let mut a = vec!["--exact-compiler".to_owned()];
    a.extend(build_all_args(
        &["debian-bookworm", "--arch", "aarch64"],
        &only(&failed),
        r,
    ));
    a.extend(["--driver".into(), "kmod".into(), "--site".into()]);
    let (code, out, err) = run(&a);
    assert_eq!(code, 1, "{err}\n{out}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    let w = &done["site"];
    assert_eq!(
        (&w["kernels"], &w["published"], &w["failed"]),
        (&3.into(), &1.into(), &1.into()),
        "{done:#}"
    );
    let reason =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(r.join("index.json")).unwrap())
            .unwrap()["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(reason.contains("no compiler"), "{reason}");
    let data = std::fs::read_to_string(r.join("site/data.js")).unwrap();
    assert!(data.contains("\"times\":{\"run\":"), "{data}");

    let probe = falco_file(&published, "o");
    let module = falco_file(&failed, "ko");
    let base = serve(r);
    for (how, page) in [
        ("http", format!("{base}/index.html")),
        ("file", file_url(&r.join("index.html"))),
    ] {
        let d = dump_dom(&page);
        assert!(d.console.is_empty(), "{how}: {:?}\n{}", d.console, d.stderr);
        let dom = &d.dom;
        // The matrix: each state, and every kernel.
        for want in [
            r#"<td class="published"><a href="8.0.0%2Bdriver/x86_64/"#,
            r#"<td class="failed">failed: "#,
            r#"<td class="missing">not built yet</td>"#,
            "no driver yet",
            "This run: 1 builds",
            "<svg",
        ] {
            assert!(dom.contains(want), "{how}: no `{want}` in\n{dom}");
        }
        for k in [&published, &failed, &not_built] {
            assert!(
                dom.contains(&k.release),
                "{how}: no {} in\n{dom}",
                k.release
            );
        }
        // Search: the published one by its release, with Falco's file name and a link to it.
        let d = dump_dom(&format!("{page}?q={}", published.release));
        assert!(d.console.is_empty(), "{how}: {:?}", d.console);
        let hit = format!(
            r#"<li class="published">8.0.0+driver ebpf: <a href="8.0.0%2Bdriver/x86_64/{}">{probe}</a>"#,
            probe.replace('+', "%2B")
        );
        assert!(d.dom.contains(&hit), "{how}: no `{hit}` in\n{}", d.dom);
        // The failed one with its reason, by release, target and uname -v.
        let d = dump_dom(&format!(
            "{page}?q={}&t=debian-bookworm&v=%23{}%20SMP",
            failed.release, failed.kernel_version
        ));
        assert!(d.console.is_empty(), "{how}: {:?}", d.console);
        let hit = format!(r#"<li class="failed">8.0.0+driver kmod: {module}: failed: "#);
        assert!(d.dom.contains(&hit), "{how}: no `{hit}` in\n{}", d.dom);
        let shown = reason
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            d.dom.contains(&shown),
            "{how}: no reason `{shown}` in\n{}",
            d.dom
        );
        // The one not built, by its release.
        let d = dump_dom(&format!("{page}?q={}", not_built.release));
        let hit = format!("{}: not built yet", falco_file(&not_built, "o"));
        assert!(d.dom.contains(&hit), "{how}: no `{hit}` in\n{}", d.dom);
    }

    // `site` again without a list keeps the kernels it was given before.
    let w = site_json(&[
        "site".into(),
        "--repo".into(),
        r.display().to_string(),
        "--json".into(),
    ]);
    // Cells are per arch: the two bullseye kernels against 8.0.0 ebpf x86_64 (one published,
    // one not built), bookworm's arm64 kernel against 8.0.0 kmod aarch64 (failed).
    assert_eq!(
        (&w["kernels"], &w["not_built"]),
        (&3.into(), &1.into()),
        "{w:#}"
    );
}

/// Issue 31 items 1 and 6: a kernel shipped by `debian` and `debian-bookworm` (both Falco target
/// id `debian`) whose probe was built through `debian` counts in both targets' coverage and in
/// the target id's; `?q=` finds it by every name (uname -r, Falco's file release, its header
/// package and that package's file name) within either target, and says which kernel a name
/// resolved to. Offline: records and a kept list written as `build-all` and `site` write them.
#[test]
fn site_counts_a_kernel_under_every_target_shipping_it_and_finds_it_by_any_name() {
    let repo = tmpdir();
    let r = repo.path();
    let bytes = b"probe bytes".to_vec();
    let meta: probeforge::publish::ProbeMeta = serde_json::from_value(serde_json::json!({
        "driver_version": "8.0.0+driver", "arch": "x86_64", "target_id": "debian",
        "kernel_release": "6.1.0-50-amd64", "kernel_version": "1",
        "file": "falco_debian_6.1.176-1-amd64_1.o", "size": bytes.len(),
        "sha256": probeforge::base::sha256(&bytes), "inputs": [], "driver_source_sha256": "",
        "patches": [], "toolchain": "", "flags_sha256": "", "built_at": "2026-12-06T00:00:00Z",
    }))
    .unwrap();
    probeforge::publish::LocalRepo::new(r)
        .publish(&meta, &bytes)
        .unwrap();
    let shipped = |target: &str, release: &str, file_release: &str| {
        serde_json::json!({"target": target, "target_id": "debian", "arch": "x86_64",
            "release": release, "kernel_version": "1", "file_release": file_release})
    };
    let kept = r.join(".probeforge/site/kernels.json");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(
        &kept,
        serde_json::to_vec(&serde_json::json!([
            shipped("debian", "6.1.0-50-amd64", "6.1.176-1-amd64"),
            shipped("debian-bookworm", "6.1.0-50-amd64", "6.1.176-1-amd64"),
            shipped("debian-bookworm", "6.1.0-49-amd64", "6.1.170-1-amd64"),
        ]))
        .unwrap(),
    )
    .unwrap();
    let w = site_json(&[
        "site".into(),
        "--repo".into(),
        r.display().to_string(),
        "--json".into(),
    ]);
    assert_eq!(
        (&w["kernels"], &w["published"], &w["not_built"]),
        (&2.into(), &1.into(), &1.into()),
        "{w:#}"
    );
    let page = file_url(&r.join("index.html"));
    let d = dump_dom(&page);
    assert!(d.console.is_empty(), "{:?}\n{}", d.console, d.stderr);
    let bar = |label: &str, n: usize, of: usize| {
        format!(
            r#"<tr><td>{label}</td><td>8.0.0+driver ebpf</td><td><svg width="300" height="16" role="img" aria-label="{n} of {of}">"#
        )
    };
    for want in [
        bar("debian", 1, 1),
        bar("debian-bookworm", 1, 2),
        bar("target id <b>debian</b> (debian, debian-bookworm)", 1, 2),
    ] {
        assert!(d.dom.contains(&want), "no `{want}` in\n{}", d.dom);
    }
    let link = r#"<li class="published">8.0.0+driver ebpf: <a href="8.0.0%2Bdriver/x86_64/falco_debian_6.1.176-1-amd64_1.o">falco_debian_6.1.176-1-amd64_1.o</a>"#;
    for (q, form) in [
        ("6.1.0-50-amd64", None),
        ("6.1.176-1-amd64", Some("Falco's file release")),
        ("linux-headers-6.1.0-50-amd64", Some("header package")),
        (
            "linux-headers-6.1.0-50-amd64_6.1.176-1_amd64.deb",
            Some("header package"),
        ),
    ] {
        for t in ["", "&t=debian-bookworm", "&t=debian"] {
            let d = dump_dom(&format!("{page}?q={q}{t}"));
            assert!(d.console.is_empty(), "{q}{t}: {:?}", d.console);
            assert!(d.dom.contains(link), "{q}{t}: no `{link}` in\n{}", d.dom);
            // The page escapes the quote of "Falco's" (`&#39;`), which the DOM reads back as `'`.
            let said = form.map(|f| {
                format!(r#"<p class="resolved">{q} is {f} of uname -r <b>6.1.0-50-amd64</b></p>"#)
            });
            match said {
                Some(s) => assert!(d.dom.contains(&s), "{q}{t}: no `{s}` in\n{}", d.dom),
                None => assert!(!d.dom.contains("class=\"resolved\""), "{q}{t}: {}", d.dom),
            }
        }
    }
    // A name no kernel answers to is not found.
    let d = dump_dom(&format!("{page}?q=linux-headers-6.1.0-51-amd64"));
    assert!(
        d.dom.contains("nothing is built for it") && !d.dom.contains(link),
        "{}",
        d.dom
    );
}

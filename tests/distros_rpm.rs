//! RPM distributions in their own repository layouts, on loopback: openSUSE (a kernel's headers
//! are two packages, the arch objtree and the noarch srctree), Photon OS (flavoured
//! `linux-*-devel`, metadata the distribution does not sign), Alibaba Cloud Linux, Amazon
//! Linux 1 (`mirror.list` with `$basearch`, only `primary.sqlite.bz2`) and Amazon Linux 2022.
//! Packages are made by rpmbuild from a real Debian kernel's headers laid out as each
//! distribution lays them out, repositories by createrepo_c, signed by a key made here where
//! the distribution signs; everything is listed and built through the CLI.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::gpg::{test_key, TestKey};
use common::rpm::{
    copy_objtree, debian_headers, rename_kernel, rpmbuild, upstream_version, yum_repo, Spec,
};
use common::server::Server;
use common::{bin, driver_8_args, libs_0_20_0, sha256_file, single_tree, tmpdir};

/// Runs probeforge with `args` after the global ones; returns (code, stdout, stderr).
fn probeforge(global: &[String], args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin())
        .args(global)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `--mirror NAME=URL --cache-dir DIR`, and `--keyring KEY` when given.
fn global(mirror: &str, url: &str, cache: &Path, key: Option<&TestKey>) -> Vec<String> {
    let mut g = vec![
        "--mirror".to_owned(),
        format!("{mirror}={url}"),
        "--cache-dir".to_owned(),
        cache.display().to_string(),
    ];
    if let Some(k) = key {
        g.extend(["--keyring".to_owned(), k.public.display().to_string()]);
    }
    g
}

/// `list-kernels TARGET --arch x86_64 --json`, which must succeed; the records.
fn list(g: &[String], target: &str) -> (Vec<serde_json::Value>, String) {
    let (code, out, err) = probeforge(g, &["list-kernels", target, "--arch", "x86_64", "--json"]);
    assert_eq!(code, 0, "list-kernels {target}: {err}");
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v, err)
}

/// `build --target T --kernel K` for 8.0.0+driver into `out`; (code, stdout, stderr).
fn build(g: &[String], target: &str, kernel: &str, out: &Path) -> (i32, String, String) {
    let src = libs_0_20_0();
    probeforge(
        g,
        &[
            "build",
            "--target",
            target,
            "--kernel",
            kernel,
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            "8.0.0+driver",
            "-o",
            out.to_str().unwrap(),
        ],
    )
}

/// A probe's `kernel_version` section holds the release it was built for, NUL-terminated.
fn assert_probe_for(probe: &Path, release: &str) {
    let bytes = fs::read(probe).unwrap_or_else(|e| panic!("{}: {e}", probe.display()));
    let needle = format!("{release}\0");
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "{} does not name {release}",
        probe.display()
    );
}

fn names(record: &serde_json::Value) -> Vec<&str> {
    record["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// A package with one small file: a kernel that is listed, never built.
fn tiny(t: &Path, name: &str, arch: &str, version: &str, release: &str, path: String) -> PathBuf {
    rpmbuild(
        t,
        &Spec {
            name,
            version,
            release,
            arch,
            trees: vec![],
            files: vec![(path, "#define UTS_RELEASE \"listed only\"\n".into())],
            links: vec![],
            preamble: vec![],
        },
    )
}

/// openSUSE Leap 15.6: the kernel update of `update/leap/15.6/sle/` is
/// `x86_64/kernel-default-devel` (objtree `usr/src/linux-V-R-obj/x86_64/default`) and
/// `noarch/kernel-devel` (srctree `usr/src/linux-V-R`), split as Debian splits the flavour
/// package from `-common`. Listed as one kernel named as `uname -r`, built into the file Falco's
/// loader asks for on Leap; the same kernel is SLES's. An objtree package in
/// `distribution/leap/15.6/repo/oss/` whose `kernel-devel` no repository has is reported by
/// name and not built.
#[test]
fn opensuse_two_package_kernels_list_build_and_a_missing_srctree_is_named() {
    let t = tmpdir();
    let (k, common, obj) = debian_headers(t.path());
    let v = upstream_version(&k);
    let (rel, base) = ("150500.55.39.1", "150500.55.39");
    let kr = format!("{v}-{base}-default");
    let src_dir = format!("usr/src/linux-{v}-{base}");
    let objtree = t.path().join("suse-obj");
    copy_objtree(&obj, &objtree);
    // SUSE's objtree Makefile (scripts/mkmakefile), and its build's uname -v and compiler.
    fs::write(
        objtree.join("Makefile"),
        format!(
            "# Automatically generated by /{src_dir}/scripts/mkmakefile: don't edit\ninclude /{src_dir}/Makefile\n"
        ),
    )
    .unwrap();
    rename_kernel(
        &objtree,
        &kr,
        Some("#1 SMP PREEMPT_DYNAMIC Wed Nov  8 09:31:14 UTC 2023 (0a0e9e6)"),
        Some("gcc (SUSE Linux) 7.5.0"),
    );
    let default_devel = rpmbuild(
        t.path(),
        &Spec {
            name: "kernel-default-devel",
            version: &v,
            release: rel,
            arch: "x86_64",
            trees: vec![(objtree, format!("{src_dir}-obj/x86_64/default"))],
            files: vec![],
            links: vec![],
            // SUSE's: the srctree of the same source release (the release without `.N`).
            preamble: vec![format!("Requires: kernel-devel = {v}-{base}")],
        },
    );
    let devel = rpmbuild(
        t.path(),
        &Spec {
            name: "kernel-devel",
            version: &v,
            release: rel,
            arch: "noarch",
            trees: vec![(common, src_dir.clone())],
            files: vec![],
            links: vec![],
            preamble: vec![],
        },
    );
    let lone_rel = "150500.55.44.1";
    let lone_kr = format!("{v}-150500.55.44-default");
    let lone = tiny(
        t.path(),
        "kernel-default-devel",
        "x86_64",
        &v,
        lone_rel,
        format!("usr/src/linux-{v}-150500.55.44-obj/x86_64/default/include/generated/utsrelease.h"),
    );
    let srv = t.path().join("srv");
    let key = test_key(t.path(), "opensuse-owner");
    yum_repo(
        &srv.join("update/leap/15.6/sle"),
        &[(&default_devel, "x86_64"), (&devel, "noarch")],
        &[],
        Some(&key),
    );
    yum_repo(
        &srv.join("distribution/leap/15.6/repo/oss"),
        &[(&lone, "x86_64")],
        &[],
        Some(&key),
    );
    // The pair as one tree: the objtree finds the srctree beside `-obj`; the tree alone cannot
    // say Leap or SLES. The objtree package alone names the srctree it lacks.
    let inspect = |inputs: &[&Path]| {
        let mut a: Vec<&str> = vec!["inspect", "--json"];
        a.extend(inputs.iter().map(|p| p.to_str().unwrap()));
        probeforge(&[], &a)
    };
    let (code, out, err) = inspect(&[&default_devel, &devel]);
    assert_eq!(code, 0, "{err}");
    let tree: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tree["kernel"]["release"], kr.as_str());
    let srctree = tree["kernel"]["srctree"].as_str().unwrap();
    assert!(srctree.ends_with(&src_dir), "{srctree}");
    assert!(tree["kernel"]["os_release"].is_null(), "{tree}");
    assert_eq!(tree["kernel"]["compiler"], "gcc (SUSE Linux) 7.5.0");
    let (code, _, err) = inspect(&[&default_devel]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot find its srctree") && err.contains(&format!("`/{src_dir}/Makefile`")),
        "{err}"
    );

    let server = Server::start(srv.clone());
    let cache = t.path().join("cache");
    let g = global("opensuse", &server.base, &cache, Some(&key));

    let (ks, err) = list(&g, "opensuse-leap-15.6");
    assert_eq!(ks.len(), 1, "{ks:#?}");
    let rec = &ks[0];
    assert_eq!(rec["release"], kr.as_str());
    assert_eq!(rec["target_id"], "opensuse-leap");
    assert_eq!(rec["kernel_version"], "1");
    assert_eq!(rec["origin"], "update/leap/15.6/sle");
    assert!(rec.get("unsigned_metadata").is_none(), "{rec}");
    assert_eq!(names(rec), ["kernel-default-devel", "kernel-devel"]);
    let pkgs = rec["packages"].as_array().unwrap();
    assert_eq!(
        pkgs[0]["url"],
        format!(
            "{}/update/leap/15.6/sle/x86_64/kernel-default-devel-{v}-{rel}.x86_64.rpm",
            server.base
        )
    );
    assert_eq!(
        pkgs[1]["url"],
        format!(
            "{}/update/leap/15.6/sle/noarch/kernel-devel-{v}-{rel}.noarch.rpm",
            server.base
        )
    );
    assert_eq!(pkgs[0]["sha256"], sha256_file(&default_devel));
    assert_eq!(pkgs[1]["sha256"], sha256_file(&devel));
    // The objtree package without its srctree package: named, with what it lacks.
    assert!(
        err.contains(&lone_kr)
            && err.contains(&format!("kernel-default-devel-{v}-{lone_rel}.x86_64.rpm"))
            && err.contains(&format!("`kernel-devel-{v}-{lone_rel}`")),
        "{err}"
    );
    // update/leap/15.6/oss is not on this mirror: skipped, not fatal.
    assert!(server
        .hits("/update/leap/15.6/oss/repodata/repomd.xml")
        .contains(&404));

    // What was read of each index is kept, by the index's digest, for the next listing.
    let memos = walkdir::WalkDir::new(&cache)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".yum-headers."))
        .count();
    assert_eq!(memos, 2, "one per repository");

    // SLES runs the same SLE kernels: the same set, under Falco's `sles`.
    let (sles, _) = list(&g, "sles-15-sp6");
    assert_eq!(sles.len(), 1, "{sles:#?}");
    assert_eq!(sles[0]["target_id"], "sles");
    assert_eq!(sles[0]["packages"], rec["packages"]);

    let out = t.path().join("out");
    let (code, _, err) = build(&g, "opensuse-leap-15.6", &kr, &out);
    assert_eq!(code, 0, "{err}");
    let probe = out.join(format!("falco_opensuse-leap_{kr}_1.o"));
    assert_probe_for(&probe, &kr);

    let (code, _, err) = build(&g, "opensuse-leap-15.6", &lone_kr, &t.path().join("out2"));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("`kernel-devel-{v}-{lone_rel}`"))
            && err.contains(&format!("no kernel `{lone_kr}`")),
        "{err}"
    );
    assert!(!t.path().join("out2").exists());
    // With a tampered repomd.xml the listing is refused, naming the file.
    let md = srv.join("update/leap/15.6/sle/repodata/repomd.xml");
    let text = fs::read_to_string(&md).unwrap();
    fs::write(&md, text.replacen("<revision>", "<revision>1", 1)).unwrap();
    let g2 = global("opensuse", &server.base, &t.path().join("c2"), Some(&key));
    let (code, _, err) = probeforge(&g2, &["list-kernels", "opensuse-leap-15.6", "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`repomd.xml`") && err.contains("no valid signature by a trusted key"),
        "{err}"
    );
}

/// Photon OS 5.0: `photon/5.0/photon_updates_5.0_x86_64/x86_64/linux-devel-V-R.ph5.x86_64.rpm`
/// holding `usr/src/linux-headers-<uname -r>`; `linux-aws-devel` is a kernel of its own
/// (`-aws`), `linux-esx-devel` none (no tracepoints). Photon signs packages, not repository
/// metadata: listing needs --allow-unsigned and says unsigned; the probe is named `photon`,
/// also when the tree alone names the distribution.
#[test]
fn photon_flavours_list_unsigned_and_build() {
    let t = tmpdir();
    let tree = t.path().join("tree");
    let k = single_tree(t.path(), &tree);
    let v = upstream_version(&k);
    let rel = "3.ph5";
    let kr = format!("{v}-{rel}");
    rename_kernel(
        &tree,
        &kr,
        Some("#1-photon SMP PREEMPT_DYNAMIC Tue Jun  4 04:37:27 UTC 2024"),
        Some("x86_64-unknown-linux-gnu-gcc (GCC) 12.2.0"),
    );
    let devel = rpmbuild(
        t.path(),
        &Spec {
            name: "linux-devel",
            version: &v,
            release: rel,
            arch: "x86_64",
            trees: vec![(tree.clone(), format!("usr/src/linux-headers-{kr}"))],
            files: vec![],
            links: vec![],
            preamble: vec![],
        },
    );
    let aws = tiny(
        t.path(),
        "linux-aws-devel",
        "x86_64",
        &v,
        rel,
        format!("usr/src/linux-aws-headers-{kr}-aws/include/generated/utsrelease.h"),
    );
    let esx = tiny(
        t.path(),
        "linux-esx-devel",
        "x86_64",
        &v,
        rel,
        format!("usr/src/linux-esx-headers-{kr}-esx/include/generated/utsrelease.h"),
    );
    // A package whose tree is another kernel than its name says: `-rt` by its name, the
    // plain kernel by its `UTS_RELEASE`.
    let rt = rpmbuild(
        t.path(),
        &Spec {
            name: "linux-rt-devel",
            version: &v,
            release: rel,
            arch: "x86_64",
            trees: vec![(tree.clone(), format!("usr/src/linux-rt-headers-{kr}-rt"))],
            files: vec![],
            links: vec![],
            preamble: vec![],
        },
    );
    let srv = t.path().join("srv");
    yum_repo(
        &srv.join("photon/5.0/photon_updates_5.0_x86_64"),
        &[
            (&devel, "x86_64"),
            (&aws, "x86_64"),
            (&esx, "x86_64"),
            (&rt, "x86_64"),
        ],
        &[],
        None,
    );
    let server = Server::start(srv.clone());
    let url = format!("{}/photon", server.base);
    let cache = t.path().join("cache");
    let g = global("photon", &url, &cache, None);

    let (code, _, err) = probeforge(&g, &["list-kernels", "photon-5.0", "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has no signed metadata") && err.contains("--allow-unsigned"),
        "{err}"
    );
    // Nothing to check, so nothing is fetched to check it with.
    assert!(server.all_hits().keys().all(|p| !p.ends_with(".asc")));

    let mut g = g;
    g.push("--allow-unsigned".into());
    let (ks, err) = list(&g, "photon-5.0");
    let releases: Vec<&str> = ks.iter().map(|r| r["release"].as_str().unwrap()).collect();
    assert_eq!(
        releases,
        [kr.clone(), format!("{kr}-aws"), format!("{kr}-rt")],
        "{ks:#?}"
    );
    for r in &ks {
        assert_eq!(r["target_id"], "photon");
        assert_eq!(r["unsigned_metadata"], true, "{r}");
        assert_eq!(r["origin"], "5.0/photon_updates_5.0_x86_64");
    }
    assert_eq!(names(&ks[0]), ["linux-devel"]);
    assert_eq!(
        ks[0]["packages"][0]["url"],
        format!("{url}/5.0/photon_updates_5.0_x86_64/x86_64/linux-devel-{kr}.x86_64.rpm")
    );
    assert!(
        err.contains("does not sign its repository metadata"),
        "{err}"
    );

    let out = t.path().join("out");
    let (code, _, err) = build(&g, "photon-5.0", &kr, &out);
    assert_eq!(code, 0, "{err}");
    assert_probe_for(&out.join(format!("falco_photon_{kr}_1.o")), &kr);

    // The release a listing derives is checked against the tree before anything is built.
    let out3 = t.path().join("out3");
    let (code, _, err) = build(&g, "photon-5.0", &format!("{kr}-rt"), &out3);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("kernel `{kr}-rt` not found"))
            && err.contains(&format!("found: {kr}")),
        "{err}"
    );
    assert!(!out3.exists());

    // The package alone: its tree names the distribution (`.ph5`) and `#1-photon` the version.
    let (code, out, err) = probeforge(&[], &["inspect", devel.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kernel"]["release"], kr.as_str());
    assert_eq!(v["kernel"]["kernel_version"], "1");
    assert_eq!(v["kernel"]["os_release"]["id"], "photon");
    assert_eq!(v["kernel"]["os_release"]["version_id"], "5.0");
    let objtree = v["kernel"]["objtree"].as_str().unwrap();
    assert!(
        objtree.ends_with(&format!("usr/src/linux-headers-{kr}")),
        "{objtree}"
    );
}

/// Alibaba Cloud Linux 3 (`alinux/3/updates/x86_64/Packages/`), Amazon Linux 1 (a
/// `latest/updates/mirror.list` naming `$basearch`, a repository offering only
/// `primary.sqlite.bz2`) and Amazon Linux 2022 (`latest/x86_64/mirror.list`): `kernel-devel`
/// listed with Falco's target ids and `uname -r` as releases.
#[test]
fn alinux_amazon_linux_1_and_2022_layouts_list() {
    let t = tmpdir();
    let key = test_key(t.path(), "rpm-owner");
    let srv = t.path().join("srv");
    let server = Server::start(srv.clone());

    let kd = |version: &str, release: &str| {
        let kr = format!("{version}-{release}.x86_64");
        let rpm = tiny(
            t.path(),
            "kernel-devel",
            "x86_64",
            version,
            release,
            format!("usr/src/kernels/{kr}/include/generated/utsrelease.h"),
        );
        (rpm, kr)
    };
    let cases: [(&str, &str, &str, &str, &str); 3] = [
        ("alinux-3", "alinux", "5.10.134", "16.3.al8", "alinux"),
        (
            "amazonlinux",
            "amazonlinux1",
            "4.14.348",
            "265.562.amzn1",
            "amazonlinux",
        ),
        (
            "amazonlinux2022",
            "amazonlinux2022",
            "5.15.25",
            "14.106.amzn2022",
            "amazonlinux2022",
        ),
    ];
    for (target, mirror, version, release, target_id) in cases {
        let (rpm, kr) = kd(version, release);
        let (url, repo, origin) = match target {
            "alinux-3" => {
                let url = format!("{}/alinux", server.base);
                yum_repo(
                    &srv.join("alinux/3/updates/x86_64"),
                    &[(&rpm, "Packages")],
                    &[],
                    Some(&key),
                );
                (
                    url,
                    "alinux/3/updates/x86_64".to_owned(),
                    "3/updates/x86_64",
                )
            }
            "amazonlinux" => {
                let repo = "amzn1/2018.03/updates/e0ea2d9a2b8a/x86_64";
                fs::create_dir_all(srv.join("amzn1/latest/updates")).unwrap();
                fs::write(
                    srv.join("amzn1/latest/updates/mirror.list"),
                    format!(
                        "{}/amzn1/2018.03/updates/e0ea2d9a2b8a/$basearch\n",
                        server.base
                    ),
                )
                .unwrap();
                let dir = srv.join(repo);
                yum_repo(
                    &dir,
                    &[(&rpm, "Packages")],
                    &["--compress-type", "bz2"],
                    None,
                );
                // As Amazon Linux 1 serves it: the database only.
                let md = dir.join("repodata/repomd.xml");
                let text = fs::read_to_string(&md).unwrap();
                let mut kept = String::new();
                let mut rest = text.as_str();
                while let Some(i) = rest.find("<data type=\"") {
                    kept += &rest[..i];
                    let end = rest[i..].find("</data>").unwrap() + i + "</data>".len();
                    let kind = &rest[i + 12..];
                    if kind.split('"').next().unwrap().ends_with("_db") {
                        kept += &rest[i..end];
                    }
                    rest = &rest[end..];
                }
                kept += rest;
                assert!(!kept.contains("type=\"primary\""), "{kept}");
                fs::write(&md, kept).unwrap();
                key.detach(&md, &dir.join("repodata/repomd.xml.asc"), true);
                (
                    format!("{}/amzn1", server.base),
                    repo.to_owned(),
                    "latest/updates",
                )
            }
            _ => {
                let repo = "al2022/core/guids/6d1f0ee4b3b5c8b1/x86_64";
                fs::create_dir_all(srv.join("al2022/core/mirrors/latest/x86_64")).unwrap();
                fs::write(
                    srv.join("al2022/core/mirrors/latest/x86_64/mirror.list"),
                    format!("{}/{repo}/\n", server.base),
                )
                .unwrap();
                yum_repo(&srv.join(repo), &[(&rpm, "Packages")], &[], Some(&key));
                (
                    format!("{}/al2022/core/mirrors", server.base),
                    repo.to_owned(),
                    "latest/x86_64",
                )
            }
        };
        let g = global(
            mirror,
            &url,
            &t.path().join(format!("c-{target}")),
            Some(&key),
        );
        let (ks, err) = list(&g, target);
        assert_eq!(ks.len(), 1, "{target}: {ks:#?} {err}");
        let r = &ks[0];
        assert_eq!(r["release"], kr.as_str(), "{target}");
        assert_eq!(r["target_id"], target_id, "{target}");
        assert_eq!(r["origin"], origin, "{target}");
        assert!(r.get("unsigned_metadata").is_none(), "{target}: {r}");
        assert_eq!(
            r["packages"][0]["url"],
            format!(
                "{}/{repo}/Packages/kernel-devel-{version}-{release}.x86_64.rpm",
                server.base
            ),
            "{target}"
        );
        assert_eq!(r["packages"][0]["sha256"], sha256_file(&rpm), "{target}");
        // kernel-crawler's list names the distro as kernel-crawler does.
        let (code, out, err) = probeforge(
            &g,
            &[
                "list-kernels",
                target,
                "--arch",
                "x86_64",
                "--format",
                "crawler",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[target_id][0]["kernelrelease"], kr.as_str(), "{out}");
        // A plan says where the module's compiler comes from: the target's own signed
        // indexes; the probe is to build.
        if target == "alinux-3" {
            let repo = t.path().join("plan-repo");
            let mut a = vec![
                "build-all",
                target,
                "--arch",
                "x86_64",
                "--driver",
                "ebpf,kmod",
            ];
            let repo_s = repo.display().to_string();
            a.extend(["--repo", &repo_s, "--plan", "--json"]);
            let d = driver_8_args();
            a.extend(d.iter().map(String::as_str));
            let (code, out, err) = probeforge(&g, &a);
            assert_eq!(code, 0, "{err}");
            let p: serde_json::Value = serde_json::from_str(&out).unwrap();
            let status = |driver: &str| {
                let i = p["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["driver"] == driver)
                    .unwrap_or_else(|| panic!("no {driver} item: {p:#}"));
                (i["status"].clone(), i["compiler"].clone())
            };
            assert_eq!(status("ebpf"), ("build".into(), serde_json::Value::Null));
            let (st, from) = status("kmod");
            assert_eq!(st, "build", "{p:#}");
            assert_eq!(
                from,
                "resolved from alinux-3's signed indexes, else Debian's build of the kernel's gcc \
                 major version",
                "{p:#}"
            );
            assert_eq!(
                (p["build"].as_u64(), p["no_compiler"].as_u64()),
                (Some(2), Some(0))
            );
        }
    }
    // openSUSE Tumbleweed: x86_64 from `tumbleweed/repo/oss/`, aarch64 from the ports tree
    // (`ports/aarch64/tumbleweed/repo/oss/`), each repository with its own noarch srctree.
    let (v, rel) = ("6.8.1", "1.1");
    let obj = |arch: &str| {
        tiny(
            t.path(),
            "kernel-default-devel",
            arch,
            v,
            rel,
            format!("usr/src/linux-{v}-1-obj/{arch}/default/include/generated/utsrelease.h"),
        )
    };
    let src = tiny(
        t.path(),
        "kernel-devel",
        "noarch",
        v,
        rel,
        format!("usr/src/linux-{v}-1/include/linux/kconfig.h"),
    );
    let (x86, arm) = (obj("x86_64"), obj("aarch64"));
    yum_repo(
        &srv.join("tumbleweed/repo/oss"),
        &[(&x86, "x86_64"), (&src, "noarch")],
        &[],
        Some(&key),
    );
    yum_repo(
        &srv.join("ports/aarch64/tumbleweed/repo/oss"),
        &[(&arm, "aarch64"), (&src, "noarch")],
        &[],
        Some(&key),
    );
    let mut g = global("opensuse", &server.base, &t.path().join("c-tw"), Some(&key));
    g.extend([
        "--mirror".into(),
        format!("opensuse-ports-aarch64={}/ports/aarch64", server.base),
    ]);
    let (code, out, err) = probeforge(&g, &["list-kernels", "opensuse-tumbleweed", "--json"]);
    assert_eq!(code, 0, "{err}");
    let ks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let got: Vec<(&str, &str, &str)> = ks
        .iter()
        .map(|r| {
            (
                r["arch"].as_str().unwrap(),
                r["release"].as_str().unwrap(),
                r["packages"][1]["url"].as_str().unwrap(),
            )
        })
        .collect();
    let noarch = format!("noarch/kernel-devel-{v}-{rel}.noarch.rpm");
    assert_eq!(
        got,
        [
            (
                "x86_64",
                "6.8.1-1-default",
                format!("{}/tumbleweed/repo/oss/{noarch}", server.base).as_str()
            ),
            (
                "aarch64",
                "6.8.1-1-default",
                format!("{}/ports/aarch64/tumbleweed/repo/oss/{noarch}", server.base).as_str()
            ),
        ],
        "{out}"
    );
    assert!(ks.iter().all(|r| r["target_id"] == "opensuse-tumbleweed"));

    // Amazon Linux 1 was read from its database: no primary.xml was asked for.
    assert!(server
        .all_hits()
        .keys()
        .filter(|p| p.starts_with("/amzn1/"))
        .all(|p| !p.contains("primary.xml")));
}

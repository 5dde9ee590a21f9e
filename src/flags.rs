//! The exact compile command kbuild would run for the probe, computed, never run.
//!
//! Pure: (kernel layout, configure results, toolchain facts) -> argument vectors. Matches
//! kbuild's `LINUXINCLUDE`/`USERINCLUDE` order and the driver Makefile's flags byte for byte
//! (see FACTS.md), plus what a direct build needs that kbuild gets elsewhere: `-nostdinc` with
//! clang's own include directory, `--target` when cross-building, and file prefix maps so the
//! output does not depend on where things were unpacked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::kernel::{Arch, KernelTree};

/// Everything that decides the compile command for one source file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlagSet {
    /// kbuild's `$(srctree)`: "." for a single tree, the absolute srctree for a split one.
    pub srctree: String,
    pub arch_dir: &'static str,
    /// `--target=` triple when the kernel's arch is not the host's.
    pub cross_target: Option<&'static str>,
    pub resource_include: PathBuf,
    pub has_compiler_version_h: bool,
    /// `HAS_<MOD>` defines from the configure tests, sorted.
    pub has: Vec<String>,
    pub cos_73: bool,
    /// Flags the kernel's own Makefile adds that its headers cannot do without (derived from
    /// the tree, see [`derived_cflags`]).
    pub derived: Vec<String>,
    /// (from, to) for `-ffile-prefix-map`.
    pub prefix_maps: Vec<(PathBuf, String)>,
}

impl FlagSet {
    pub fn new(k: &KernelTree, resource_include: &Path, host: Option<Arch>) -> FlagSet {
        let split = k.srctree != k.objtree;
        FlagSet {
            srctree: if split {
                k.srctree.display().to_string()
            } else {
                ".".to_owned()
            },
            arch_dir: k.arch.kernel_dir(),
            cross_target: (host != Some(k.arch)).then(|| k.arch.triple()),
            resource_include: resource_include.to_owned(),
            has_compiler_version_h: k.srctree.join("include/linux/compiler-version.h").is_file(),
            has: Vec::new(),
            cos_73: false,
            derived: derived_cflags(&k.makefile(), &k.config),
            prefix_maps: vec![(k.root.clone(), String::new())],
        }
    }

    /// clang's arguments to turn `source` into LLVM bitcode on stdout. The working directory
    /// must be the objtree.
    pub fn clang_args(&self, source: &Path, with_has: bool) -> Vec<OsString> {
        let s = &self.srctree;
        let a = self.arch_dir;
        let mut v: Vec<String> = Vec::new();
        if let Some(t) = self.cross_target {
            v.push(format!("--target={t}"));
        }
        v.push("-nostdinc".into());
        v.push("-isystem".into());
        v.push(self.resource_include.display().to_string());
        v.push(format!("-I{s}/arch/{a}/include"));
        v.push(format!("-I./arch/{a}/include/generated"));
        if s != "." {
            v.push(format!("-I{s}/include"));
        }
        v.push("-I./include".into());
        v.push(format!("-I{s}/arch/{a}/include/uapi"));
        v.push(format!("-I./arch/{a}/include/generated/uapi"));
        v.push(format!("-I{s}/include/uapi"));
        v.push("-I./include/generated/uapi".into());
        if self.has_compiler_version_h {
            v.push("-include".into());
            v.push(format!("{s}/include/linux/compiler-version.h"));
        }
        v.push("-include".into());
        v.push(format!("{s}/include/linux/kconfig.h"));
        v.push("-D__KERNEL__".into());
        if with_has {
            v.extend(self.has.iter().map(|m| format!("-DHAS_{m}")));
            if self.cos_73 {
                v.push("-DCOS_73_WORKAROUND".into());
            }
        }
        v.extend(self.derived.iter().cloned());
        for (from, to) in &self.prefix_maps {
            v.push(format!("-ffile-prefix-map={}={}", from.display(), to));
        }
        v.extend(
            [
                "-D__BPF_TRACING__",
                "-Wno-gnu-variable-sized-type-not-at-end",
                "-Wno-address-of-packed-member",
                "-fno-jump-tables",
                "-fno-stack-protector",
                "-Wno-tautological-compare",
                "-Wno-unknown-attributes",
                "-O2",
                "-g",
                "-emit-llvm",
                "-c",
            ]
            .map(String::from),
        );
        let mut out: Vec<OsString> = v.into_iter().map(OsString::from).collect();
        out.push(source.as_os_str().to_owned());
        out.push("-o".into());
        out.push("-".into());
        out
    }

    /// llc's arguments: bitcode on stdin, a BPF object at `out`.
    pub fn llc_args(out: &Path) -> Vec<OsString> {
        let mut v: Vec<OsString> = ["-march=bpf", "-filetype=obj", "-o"]
            .iter()
            .map(OsString::from)
            .collect();
        v.push(out.as_os_str().to_owned());
        v.push("-".into());
        v
    }
}

/// Flags a kernel's Makefile passes in `KBUILD_CFLAGS` (which the probe's own rule never sees)
/// and that its headers cannot do without. Derived from the tree, not from a list of versions:
/// kernels whose Makefile builds with `$(CONFIG_CC_MS_EXTENSIONS)` (7.x) have headers with
/// anonymous tagged structs, so they get that flag and the dialect's clang warnings off, and,
/// where the config traces functions with fentry, the `-DCC_USING_FENTRY` their
/// `asm/ftrace.h` insists on. Older kernels get nothing: there the command stays kbuild's.
pub fn derived_cflags(makefile: &str, config: &crate::kernel::Config) -> Vec<String> {
    let mut out = Vec::new();
    let live = |l: &&str| !l.trim_start().starts_with('#');
    let ms = config
        .get("CC_MS_EXTENSIONS")
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty());
    let uses_ms = makefile
        .lines()
        .filter(live)
        .any(|l| l.contains("$(CONFIG_CC_MS_EXTENSIONS)"));
    let literal_ms = makefile
        .lines()
        .filter(live)
        .any(|l| l.contains("KBUILD_CFLAGS") && l.contains("-fms-extensions"));
    match (uses_ms, ms) {
        (true, Some(ms)) => out.extend(ms.split_whitespace().map(str::to_owned)),
        _ if literal_ms => out.push("-fms-extensions".to_owned()),
        _ => return out,
    }
    for l in makefile.lines().filter(live) {
        if let Some(f) = l.trim().strip_prefix("CC_FLAGS_DIALECT += ") {
            if f.starts_with("-Wno-") {
                out.push(f.trim().to_owned());
            }
        }
    }
    if !out.iter().any(|f| f == "-Wno-microsoft-anon-tag") {
        out.push("-Wno-microsoft-anon-tag".to_owned());
    }
    if config.builtin("HAVE_FENTRY")
        && config.builtin("FUNCTION_TRACER")
        && makefile.contains("-DCC_USING_FENTRY")
    {
        out.push("-DCC_USING_FENTRY".to_owned());
    }
    out
}

/// Does the kernel carry ChromiumOS's audit divergence (COS 73)? Greps the srctree's
/// `include/linux/sched.h`, not the objtree's (the upstream Makefile's bug).
pub fn needs_cos_73(sched_h: &str) -> bool {
    sched_h
        .lines()
        .filter(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t == ["struct", "audit_task_info", "*audit;"]
        })
        .count()
        == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(split: bool) -> FlagSet {
        FlagSet {
            srctree: if split {
                "/r/usr/src/linux-headers-6.1.0-50-common".into()
            } else {
                ".".into()
            },
            arch_dir: "x86",
            cross_target: None,
            resource_include: "/usr/lib/llvm-14/lib/clang/14.0.6/include".into(),
            has_compiler_version_h: true,
            has: vec!["RSS_STAT_ARRAY".into()],
            cos_73: false,
            derived: vec![],
            prefix_maps: vec![("/r".into(), String::new())],
        }
    }

    /// Snapshot of the Debian split-tree command: a change here must be deliberate.
    #[test]
    fn debian_split_tree_snapshot() {
        let args: Vec<String> = set(true)
            .clang_args(Path::new("/d/probe.c"), true)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let s = "/r/usr/src/linux-headers-6.1.0-50-common";
        let want = format!(
            "-nostdinc -isystem /usr/lib/llvm-14/lib/clang/14.0.6/include \
             -I{s}/arch/x86/include -I./arch/x86/include/generated -I{s}/include -I./include \
             -I{s}/arch/x86/include/uapi -I./arch/x86/include/generated/uapi -I{s}/include/uapi \
             -I./include/generated/uapi -include {s}/include/linux/compiler-version.h \
             -include {s}/include/linux/kconfig.h -D__KERNEL__ -DHAS_RSS_STAT_ARRAY \
             -ffile-prefix-map=/r= -D__BPF_TRACING__ -Wno-gnu-variable-sized-type-not-at-end \
             -Wno-address-of-packed-member -fno-jump-tables -fno-stack-protector \
             -Wno-tautological-compare -Wno-unknown-attributes -O2 -g -emit-llvm -c /d/probe.c -o -"
        );
        assert_eq!(args.join(" "), want);
    }

    #[test]
    fn single_tree_has_no_duplicate_include_and_configure_has_no_has() {
        let args: Vec<String> = set(false)
            .clang_args(Path::new("t.c"), false)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(args.iter().filter(|a| *a == "-I./include").count(), 1);
        assert!(args.contains(&"-include".to_owned()));
        assert!(args.contains(&"./include/linux/kconfig.h".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("-DHAS_")));
    }

    #[test]
    fn cos_73_and_derived_flags() {
        assert!(needs_cos_73(
            "struct task_struct {\n\tstruct audit_task_info\t*audit;\n"
        ));
        assert!(!needs_cos_73("struct audit_context *audit_context;"));
        use crate::kernel::Config;
        let cfg7 = Config::parse_dotconfig(
            "CONFIG_CC_MS_EXTENSIONS=\"-fms-extensions\"\nCONFIG_HAVE_FENTRY=y\nCONFIG_FUNCTION_TRACER=y\n",
        );
        let mk7 = "CC_FLAGS_DIALECT := -std=gnu11\nCC_FLAGS_DIALECT += $(CONFIG_CC_MS_EXTENSIONS)\nCC_FLAGS_DIALECT += -Wno-gnu\nCC_FLAGS_DIALECT += -Wno-microsoft-anon-tag\n    CC_FLAGS_USING\t+= -DCC_USING_FENTRY\n";
        assert_eq!(
            derived_cflags(mk7, &cfg7),
            vec![
                "-fms-extensions",
                "-Wno-gnu",
                "-Wno-microsoft-anon-tag",
                "-DCC_USING_FENTRY"
            ]
        );
        // A 6.1 Makefile has CC_USING_FENTRY too, but no MS extensions: kbuild's command.
        let cfg61 = Config::parse_dotconfig("CONFIG_HAVE_FENTRY=y\nCONFIG_FUNCTION_TRACER=y\n");
        assert!(derived_cflags("    CC_FLAGS_USING\t+= -DCC_USING_FENTRY\n", &cfg61).is_empty());
        assert!(derived_cflags("# KBUILD_CFLAGS += -fms-extensions\n", &cfg61).is_empty());
    }
}

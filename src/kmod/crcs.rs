//! The `Module.symvers` a kernel tree prepared from its source does not have, for exactly the
//! symbols one module imports: each symbol's exporting source file found in the tree
//! (`EXPORT_SYMBOL*` lines), that file alone compiled by kbuild in the tree (`make <dir>/<f>.o`,
//! which under CONFIG_MODVERSIONS runs genksyms on it just as the kernel's full build does and
//! records `#SYMVER <symbol> <crc>` in the object's `.cmd` file), and the CRCs read back from
//! there. A handful of objects instead of vmlinux.
//!
//! Never guesses: a symbol no source exports, or two sources that give it different CRCs, is an
//! error naming it. The tree's `Module.symvers` only grows (under a lock, written whole).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, Error};
use crate::kernel::KernelTree;

/// One export a source file writes: a symbol, or a pattern a macro fills in
/// (`EXPORT_SYMBOL(param_ops_##name)`: prefix `param_ops_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    Symbol {
        symbol: String,
        /// `EXPORT_SYMBOL` or `EXPORT_SYMBOL_GPL` (Module.symvers' column), as the source says.
        kind: &'static str,
        namespace: String,
    },
    Pattern {
        prefix: String,
        suffix: String,
        kind: &'static str,
    },
}

impl Export {
    /// The export type and namespace this export gives `symbol`, if it exports it.
    pub fn exports(&self, symbol: &str) -> Option<(&'static str, &str)> {
        match self {
            Export::Symbol {
                symbol: s,
                kind,
                namespace,
            } => (s == symbol).then_some((*kind, namespace.as_str())),
            Export::Pattern {
                prefix,
                suffix,
                kind,
            } => (symbol.len() > prefix.len() + suffix.len()
                && symbol.starts_with(prefix.as_str())
                && symbol.ends_with(suffix.as_str()))
            .then_some((*kind, "")),
        }
    }
}

fn ident(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a C, assembly or header source exports, as written: every macro whose name says
/// `EXPORT` with a symbol as its first argument (`EXPORT_SYMBOL[_GPL|_NS|_NS_GPL]`,
/// `EXPORT_PER_CPU_SYMBOL`, arch wrappers), the names `EXPORT_TRACEPOINT_SYMBOL*` and
/// `EXPORT_STATIC_CALL*` derive, and the patterns of exports inside macro bodies
/// (`prefix ## arg`). A candidate only: the object's genksyms output decides.
pub fn exports_in(text: &str) -> Vec<Export> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("EXPORT") {
            let start = rest[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(|i| i + 1)
                .unwrap_or(0);
            let after = &rest[at..];
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let mac = &rest[start..at + name_end];
            let tail = after[name_end..].trim_start();
            rest = &after[name_end..];
            let Some(args) = tail.strip_prefix('(') else {
                continue;
            };
            let Some(close) = args.find(')') else {
                continue;
            };
            let args: Vec<&str> = args[..close].split(',').map(str::trim).collect();
            let first = args[0];
            let kind = if mac.contains("GPL") {
                "EXPORT_SYMBOL_GPL"
            } else {
                "EXPORT_SYMBOL"
            };
            if let Some((prefix, arg)) = first.split_once("##") {
                // `prefix ## arg [## suffix]`
                let (prefix, arg) = (prefix.trim(), arg.trim());
                let suffix = arg.split_once("##").map(|(_, s)| s.trim()).unwrap_or("");
                if prefix.len() >= 3 && ident(prefix) && (suffix.is_empty() || ident(suffix)) {
                    out.push(Export::Pattern {
                        prefix: prefix.to_owned(),
                        suffix: suffix.to_owned(),
                        kind,
                    });
                }
                continue;
            }
            if !ident(first) {
                continue;
            }
            let names: Vec<String> = if mac.starts_with("EXPORT_TRACEPOINT_SYMBOL") {
                ["__tracepoint_", "__traceiter_", "__SCK__tp_func_"]
                    .iter()
                    .map(|p| format!("{p}{first}"))
                    .collect()
            } else if mac.starts_with("EXPORT_STATIC_CALL_TRAMP") {
                vec![format!("__SCT__{first}")]
            } else if mac.starts_with("EXPORT_STATIC_CALL") {
                vec![format!("__SCK__{first}"), format!("__SCT__{first}")]
            } else {
                vec![first.to_owned()]
            };
            let namespace = match mac.contains("_NS") {
                true => args.get(1).map(|s| s.trim_matches('"')).unwrap_or(""),
                false => "",
            };
            for symbol in names {
                out.push(Export::Symbol {
                    symbol,
                    kind,
                    namespace: namespace.to_owned(),
                });
            }
        }
    }
    out
}

/// Whether a kbuild Makefile builds `object` (`x.o`) under `config`: a line naming it whose
/// variable is `obj-y`, `lib-y`, `<module>-y`, or `...-$(CONFIG_X)` with X set to y or m.
pub fn makefile_builds(makefile: &str, object: &str, config: &crate::kernel::Config) -> bool {
    let joined = makefile.replace("\\\n", " ");
    joined.lines().any(|l| {
        let Some(eq) = l.find('=') else {
            return false;
        };
        let var = l[..eq].trim_end_matches([':', '+', '?']).trim();
        if var.is_empty() || var.contains(char::is_whitespace) && !var.contains("$(") {
            return false;
        }
        if !l[eq + 1..]
            .split_whitespace()
            .any(|w| word_matches(w, object))
        {
            return false;
        }
        match var.split_once("$(CONFIG_") {
            Some((_, c)) => {
                let name = c.trim_end_matches(')');
                matches!(config.get(name), Some("y") | Some("m"))
            }
            None => var.ends_with("-y") || var.ends_with("-objs"),
        }
    })
}

/// A Makefile word naming `object`, where each `$(VAR)` in it stands for any text
/// (`memcpy_$(BITS).o`).
fn word_matches(word: &str, object: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = word;
    while let Some(at) = rest.find("$(") {
        parts.push(&rest[..at]);
        let Some(end) = rest[at..].find(')') else {
            return false;
        };
        rest = &rest[at + end + 1..];
    }
    parts.push(rest);
    if parts.len() == 1 {
        return word == object;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !object.starts_with(first)
        || !object.ends_with(last)
        || object.len() < first.len() + last.len()
    {
        return false;
    }
    let mut at = first.len();
    let end = object.len() - last.len();
    for p in &parts[1..parts.len() - 1] {
        match object[at..end].find(p) {
            Some(i) => at += i + p.len(),
            None => return false,
        }
    }
    true
}

/// `#SYMVER <symbol> 0x<crc>` lines of a kbuild `.cmd` file, and the module the object belongs
/// to (`KBUILD_MODFILE` when compiled with `-DMODULE`; `vmlinux` otherwise).
pub fn symvers_of_cmd(text: &str) -> (Vec<(String, u32)>, String) {
    let mut crcs = Vec::new();
    let mut module = "vmlinux".to_owned();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("#SYMVER ") {
            let mut w = rest.split_whitespace();
            if let (Some(s), Some(c)) = (w.next(), w.next()) {
                if let Ok(c) = u32::from_str_radix(c.trim_start_matches("0x"), 16) {
                    crcs.push((s.to_owned(), c));
                }
            }
        } else if l.starts_with("cmd_") && l.split_whitespace().any(|w| w == "-DMODULE") {
            if let Some(f) = l.split("-DKBUILD_MODFILE=").nth(1) {
                let f = f.split_whitespace().next().unwrap_or_default();
                module = f.trim_matches(|c| c == '\'' || c == '"').to_owned();
            }
        }
    }
    (crcs, module)
}

/// Whether an object exports `symbol` (defines `__ksymtab_<symbol>`), and if so whether in a
/// GPL-only table (its section says `gpl`).
pub fn ksymtab_of(bytes: &[u8], symbol: &str) -> Option<bool> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let f = object::File::parse(bytes).ok()?;
    let want = format!("__ksymtab_{symbol}");
    let s = f
        .symbols()
        .find(|s| !s.is_undefined() && s.name() == Ok(want.as_str()))?;
    let section = s.section_index().and_then(|i| f.section_by_index(i).ok());
    Some(section.is_some_and(|sec| sec.name().is_ok_and(|n| n.contains("gpl"))))
}

/// The undefined symbols of a module or object (pure over bytes).
pub fn undefined_symbols(bytes: &[u8]) -> Result<Vec<String>, String> {
    use object::{Object, ObjectSymbol};
    let f = object::File::parse(bytes).map_err(|e| e.to_string())?;
    let mut v: Vec<String> = f
        .symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// A tree this module completes: prepared from its source (kbuild's genksyms built, srctree
/// and objtree one) and without a `Module.symvers` from a full build.
pub fn is_source_tree(tree: &KernelTree) -> bool {
    tree.srctree == tree.objtree
        && tree.objtree.join("scripts/genksyms/genksyms").is_file()
        && tree.objtree.join("Kconfig").is_file()
}

/// How [`complete`] runs kbuild: the module build's compiler variables, `PATH`, `-j`, and the
/// log file.
#[derive(Debug, Clone, Copy)]
pub struct Make<'a> {
    pub args: &'a [String],
    pub path: &'a std::ffi::OsStr,
    pub jobs: usize,
    pub log: &'a Path,
}

/// What [`complete`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Completed {
    /// Symbols whose CRCs were computed now.
    pub computed: usize,
    /// Objects compiled for them.
    pub objects: usize,
    pub seconds: f64,
}

/// The objects kbuild builds from `rel` (a `.c`/`.S` its directory's Makefile names, under the
/// config), or from the files of its directory that `#include` it (sched's `build_utility.c`
/// including `wait.c`, rcu's `tree.c` including `tree_plugin.h`), as paths of `.o` files.
fn objects_of(tree: &Path, rel: &Path, config: &crate::kernel::Config, depth: u8) -> Vec<PathBuf> {
    let dir = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let stem = rel
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mk = ["Makefile", "Kbuild"]
        .iter()
        .filter_map(|m| fs::read_to_string(tree.join(dir).join(m)).ok())
        .collect::<Vec<_>>()
        .join("\n");
    if !name.ends_with(".h") && makefile_builds(&mk, &format!("{stem}.o"), config) {
        return vec![dir.join(format!("{stem}.o"))];
    }
    if depth == 0 {
        return Vec::new();
    }
    let needle = format!("#include \"{name}\"");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(tree.join(dir)) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for p in files {
        let n = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if n == name || !(n.ends_with(".c") || n.ends_with(".S") || n.ends_with(".h")) {
            continue;
        }
        if fs::read_to_string(&p).is_ok_and(|t| t.contains(&needle)) {
            out.extend(objects_of(tree, &dir.join(&n), config, depth - 1));
        }
    }
    out
}

/// By symbol: the objects that may export it, with the export type and namespace the source
/// gives.
type Candidates = BTreeMap<String, Vec<(PathBuf, &'static str, String)>>;

/// The objects that may export each of `wanted` (by what their sources write), with the export
/// type and namespace the source gives. C, assembly and headers under `tree`, not tools, docs,
/// samples, scripts or other architectures.
fn exporters(
    tree: &Path,
    arch_dir: &str,
    config: &crate::kernel::Config,
    wanted: &BTreeSet<String>,
) -> Result<Candidates, Error> {
    let mut found = Candidates::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let dir = tree.join(&rel);
        for e in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = rel.join(&name);
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                let skip = rel.as_os_str().is_empty()
                    && matches!(
                        name.as_str(),
                        "tools" | "Documentation" | "samples" | "scripts" | "usr" | "include"
                    )
                    || rel == Path::new("arch") && name != arch_dir
                    || name.starts_with('.');
                if !skip {
                    dirs.push(r);
                }
                continue;
            }
            let source = name.ends_with(".c") || name.ends_with(".S") || name.ends_with(".h");
            if !(t.is_file() && source) {
                continue;
            }
            let bytes = fs::read(e.path()).map_err(|err| io_err(&e.path(), err))?;
            if !bytes.windows(6).any(|w| w == b"EXPORT") {
                continue;
            }
            let exports = exports_in(&String::from_utf8_lossy(&bytes));
            let mut objects = None;
            for sym in wanted {
                let Some((kind, ns)) = exports.iter().find_map(|x| x.exports(sym)) else {
                    continue;
                };
                let objs = objects.get_or_insert_with(|| objects_of(tree, &r, config, 2));
                for o in objs.iter() {
                    found
                        .entry(sym.clone())
                        .or_default()
                        .push((o.clone(), kind, ns.to_owned()));
                }
            }
        }
    }
    Ok(found)
}

/// Adds to `tree`'s `Module.symvers` the CRC of every symbol of `needed` it lacks (and of
/// `optional` ones some source exports, such as `module_layout`), computing each by compiling
/// the object that exports it with `make_args` (the module build's compiler variables) and
/// `path` as `PATH`. Symbols no source exports are left for validation to name.
pub fn complete(
    tree: &KernelTree,
    needed: &[String],
    optional: &[&str],
    make: &Make,
) -> Result<Completed, Error> {
    let Make {
        args: make_args,
        path,
        jobs,
        log,
    } = *make;
    let modversions = tree.config.builtin("MODVERSIONS");
    let start = std::time::Instant::now();
    let dir = &tree.objtree;
    // One completion at a time per tree: kbuild in the tree, and the file written whole.
    let lock_path = dir.join(".probeforge-symvers.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(&lock_path, std::io::Error::last_os_error()));
    }
    let symvers_path = dir.join("Module.symvers");
    let old = fs::read_to_string(&symvers_path).unwrap_or_default();
    let have = super::Symvers::parse(&old);
    let wanted: BTreeSet<String> = needed
        .iter()
        .cloned()
        .chain(optional.iter().map(|s| s.to_string()))
        .filter(|s| have.crc(s).is_none())
        .collect();
    if wanted.is_empty() {
        return Ok(Completed::default());
    }
    let found = exporters(dir, tree.arch.kernel_dir(), &tree.config, &wanted)?;
    let objects: BTreeSet<String> = found
        .values()
        .flatten()
        .map(|(p, _, _)| p.to_string_lossy().into_owned())
        .collect();
    if objects.is_empty() {
        return Ok(Completed::default());
    }
    // kbuild rewrites `include/config/kernel.release` from the source's own version on every
    // top-level run (KERNELRELEASE on the command line reaches only utsrelease.h): it is put
    // back, since module builds and the probe read `uname -r` from it.
    let release_file = dir.join("include/config/kernel.release");
    let release_text = fs::read(&release_file).map_err(|e| io_err(&release_file, e))?;
    // `-k`: a candidate the config does not build may fail; the others still give their CRCs.
    let out = fs::File::create(log).map_err(|e| io_err(log, e))?;
    let err = out.try_clone().map_err(|e| io_err(log, e))?;
    let status = Command::new("make")
        .arg("-C")
        .arg(dir)
        .arg(format!("ARCH={}", tree.arch.kernel_dir()))
        .args(make_args)
        .arg(format!("-j{}", jobs.max(1)))
        .arg("-k")
        .arg(format!("KERNELRELEASE={}", tree.release))
        .args(&objects)
        .env("LC_ALL", "C")
        .env("PATH", path)
        .env_remove("MAKEFLAGS")
        .env_remove("KBUILD_OUTPUT")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| io_err(Path::new("make"), e));
    if fs::read(&release_file).ok().as_ref() != Some(&release_text) {
        crate::base::write_atomic(&release_file, &release_text)
            .map_err(|e| io_err(&release_file, e))?;
    }
    status?;
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    for (sym, cands) in &found {
        let mut got: Vec<(u32, String, &str, &str)> = Vec::new();
        for (p, kind, ns) in cands {
            let cmd = dir.join(p.parent().unwrap_or(Path::new(""))).join(format!(
                ".{}.o.cmd",
                p.file_stem().unwrap_or_default().to_string_lossy()
            ));
            let Ok(text) = fs::read_to_string(&cmd) else {
                continue;
            };
            let (crcs, module) = symvers_of_cmd(&text);
            // The object itself says whether it exports the symbol, and how (its section).
            let obj = dir.join(p);
            let Some(gpl) = fs::read(&obj).ok().and_then(|b| ksymtab_of(&b, sym)) else {
                continue;
            };
            let kind = match gpl {
                true => "EXPORT_SYMBOL_GPL",
                false => *kind,
            };
            if let Some((_, c)) = crcs.iter().find(|(s, _)| s == sym) {
                got.push((*c, module, kind, ns));
            } else if !modversions {
                // Without MODVERSIONS every CRC is 0, as in such a kernel's own file.
                got.push((0, module, kind, ns));
            }
        }
        got.sort_by_key(|g| g.0);
        got.dedup_by_key(|g| g.0);
        match got.as_slice() {
            [] => {}
            [(crc, module, kind, ns)] => {
                lines.insert(
                    sym.clone(),
                    format!("0x{crc:08x}\t{sym}\t{module}\t{kind}\t{ns}"),
                );
            }
            several => {
                return Err(Error::AmbiguousCrc {
                    release: tree.release.clone(),
                    symbol: sym.clone(),
                    found: several.iter().map(|g| format!("0x{:08x}", g.0)).collect(),
                })
            }
        }
    }
    let computed = lines.len();
    let mut all: BTreeMap<String, String> = old
        .lines()
        .filter_map(|l| Some((l.split('\t').nth(1)?.to_owned(), l.to_owned())))
        .collect();
    all.extend(lines);
    let mut text: String = all.into_values().collect::<Vec<_>>().join("\n");
    text.push('\n');
    crate::base::write_atomic(&symvers_path, text.as_bytes())
        .map_err(|e| io_err(&symvers_path, e))?;
    Ok(Completed {
        computed,
        objects: objects.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_read_as_written_with_macro_patterns() {
        let src = "EXPORT_SYMBOL(memcpy)\n\tEXPORT_SYMBOL_GPL( tracepoint_probe_register );\n\
                   EXPORT_SYMBOL_NS_GPL(foo, CXL);\n\tEXPORT_SYMBOL(param_ops_##name)\n\
                   #define EXPORT_THUNK(reg) __EXPORT_THUNK(__x86_indirect_thunk_ ## reg)\n\
                   EXPORT_TRACEPOINT_SYMBOL_GPL(sched_switch);\nEXPORT_PER_CPU_SYMBOL(current_task);\n\
                   EXPORT_STATIC_CALL_TRAMP(preempt_schedule);\n/* EXPORT_SYMBOL() */\n";
        let v = exports_in(src);
        let gives = |s: &str| v.iter().find_map(|x| x.exports(s));
        assert_eq!(gives("memcpy"), Some(("EXPORT_SYMBOL", "")));
        assert_eq!(
            gives("tracepoint_probe_register"),
            Some(("EXPORT_SYMBOL_GPL", ""))
        );
        assert_eq!(gives("foo"), Some(("EXPORT_SYMBOL_GPL", "CXL")));
        assert_eq!(gives("param_ops_uint"), Some(("EXPORT_SYMBOL", "")));
        assert!(gives("__x86_indirect_thunk_rax").is_some());
        assert!(gives("__tracepoint_sched_switch").is_some());
        assert!(gives("__SCK__tp_func_sched_switch").is_some());
        assert!(gives("current_task").is_some());
        assert!(gives("__SCT__preempt_schedule").is_some());
        assert_eq!(gives("param_ops_"), None);
        assert_eq!(gives("memmove"), None);
    }

    #[test]
    fn makefiles_are_read_as_kbuild_reads_them() {
        let config = crate::kernel::Config::parse_dotconfig(
            "CONFIG_FUNCTION_TRACER=y\nCONFIG_NUMA=m\n# CONFIG_SMP is not set\n",
        );
        let mk = "obj-y     = fork.o \\\n\t    cpu.o exit.o\nobj-$(CONFIG_FUNCTION_TRACER) += ftrace_$(BITS).o\n\
                  obj-$(CONFIG_SMP) += smp.o\nobj-$(CONFIG_NUMA) += numa.o\nlib-y += memcpy_$(BITS).o\n";
        for (o, built) in [
            ("cpu.o", true),
            ("fork.o", true),
            ("ftrace_64.o", true),
            ("smp.o", false),
            ("numa.o", true),
            ("memcpy_64.o", true),
            ("memmove_64.o", false),
            ("wait.o", false),
        ] {
            assert_eq!(makefile_builds(mk, o, &config), built, "{o}");
        }
    }

    #[test]
    fn symver_lines_and_module_objects_are_read_from_cmd_files() {
        let cmd = "cmd_drivers/x/y.o := gcc -DMODULE -DKBUILD_MODFILE='\"drivers/x/xy\"' -c y.c\n\
                   #SYMVER y_do 0x1fb591fa\n#SYMVER y_undo 0x00000001\n";
        let (crcs, module) = symvers_of_cmd(cmd);
        assert_eq!(crcs, [("y_do".into(), 0x1fb591fa), ("y_undo".into(), 1)]);
        assert_eq!(module, "drivers/x/xy");
        let (_, module) = symvers_of_cmd("cmd_kernel/t.o := gcc -c t.c\n");
        assert_eq!(module, "vmlinux");
    }
}

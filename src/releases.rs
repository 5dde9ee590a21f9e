//! The Falco driver releases that have a legacy eBPF probe, which Falco releases pin each, where
//! its source comes from, and how it fares on each Debian kernel line: the table behind
//! `probeforge drivers`, read from `catalog/drivers.json`. The tests and `benches/drivers.rs`
//! build the cells they can and fail where the table says otherwise; it never guesses a cell.

use std::collections::BTreeMap;
use std::fmt;

use crate::driver::{KnownVersion, SourceCatalog};
use crate::kernel::Arch;

/// The Debian kernel lines the table covers, oldest first.
pub const LINES: [&str; 4] = ["5.10", "6.1", "6.12", "7.x"];

/// What happens when a driver is built for a kernel line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Builds and validates as it is.
    Builds,
    /// Builds with these `driver-patches/`.
    Patched(Vec<String>),
    /// Cannot be built: why.
    Cannot(String),
}

impl Outcome {
    /// `builds`, `patched: a.patch, b.patch`, `cannot: why`.
    pub fn parse(s: &str) -> Option<Outcome> {
        let s = s.trim();
        if s == "builds" {
            return Some(Outcome::Builds);
        }
        if let Some(p) = s.strip_prefix("patched:") {
            let v: Vec<String> = p.split(',').map(|x| x.trim().to_owned()).collect();
            return (!v.iter().any(String::is_empty)).then_some(Outcome::Patched(v));
        }
        s.strip_prefix("cannot:")
            .map(|w| Outcome::Cannot(w.trim().to_owned()))
            .filter(|o| !matches!(o, Outcome::Cannot(w) if w.is_empty()))
    }

    /// Same result: built with the same patches, or not built (the reason's wording aside).
    pub fn same_kind(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Cannot(_), Outcome::Cannot(_)) => true,
            (a, b) => a == b,
        }
    }

    /// From a build: the patches it applied, or the failure.
    pub fn built(patches: &[String]) -> Outcome {
        if patches.is_empty() {
            Outcome::Builds
        } else {
            Outcome::Patched(patches.to_vec())
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Builds => write!(f, "builds"),
            Outcome::Patched(p) => write!(f, "patched: {}", p.join(", ")),
            Outcome::Cannot(w) => write!(f, "cannot: {w}"),
        }
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The kernel line of a kernel version: `5.10`, `6.1`, `6.12`, `7.x`; `None` outside them.
pub fn line_of(kernel: (u32, u32, u32)) -> Option<&'static str> {
    match kernel {
        (5, 10, _) => Some("5.10"),
        (6, 1, _) => Some("6.1"),
        (6, 12, _) => Some("6.12"),
        (7, _, _) => Some("7.x"),
        _ => None,
    }
}

/// One release with its measured outcomes per arch and kernel line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Release {
    #[serde(flatten)]
    pub known: KnownVersion,
    pub default: bool,
    /// arch (`x86_64`, `aarch64`) -> kernel line -> outcome; a missing cell was not measured.
    pub outcomes: BTreeMap<String, BTreeMap<String, Outcome>>,
}

/// Every known release, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Table {
    pub releases: Vec<Release>,
}

/// A cell of the driver catalog that is not an outcome.
#[derive(Debug, thiserror::Error)]
#[error("driver {driver} on {arch} {line}: outcome `{text}` is not `builds`, `patched: ...` or `cannot: ...`")]
pub struct BadOutcome {
    pub driver: String,
    pub arch: String,
    pub line: String,
    pub text: String,
}

impl Table {
    pub fn embedded() -> Table {
        Table::from_catalog(&SourceCatalog::embedded())
            .expect("the embedded driver catalog's outcomes parse")
    }

    /// The table of a catalog; an outcome that does not parse is an error naming its cell.
    pub fn from_catalog(cat: &SourceCatalog) -> Result<Table, BadOutcome> {
        let mut releases = Vec::new();
        for k in &cat.known {
            let mut outcomes = BTreeMap::new();
            for (arch, lines) in &k.kernels {
                let mut m = BTreeMap::new();
                for (line, text) in lines {
                    let o = Outcome::parse(text).ok_or_else(|| BadOutcome {
                        driver: k.version.clone(),
                        arch: arch.clone(),
                        line: line.clone(),
                        text: text.clone(),
                    })?;
                    m.insert(line.clone(), o);
                }
                outcomes.insert(arch.clone(), m);
            }
            releases.push(Release {
                default: k.version == cat.default_version,
                known: k.clone(),
                outcomes,
            });
        }
        Ok(Table { releases })
    }

    /// The recorded outcome of a driver on a kernel line and arch, if measured.
    pub fn expected(&self, driver: &str, line: &str, arch: Arch) -> Option<&Outcome> {
        self.releases
            .iter()
            .find(|r| r.known.version == driver)?
            .outcomes
            .get(arch.uname_m())?
            .get(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_and_print_back() {
        for s in [
            "builds",
            "patched: a.patch, b.patch",
            "cannot: no raw tracepoints",
        ] {
            assert_eq!(Outcome::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Outcome::parse("cannot:"), None);
        assert_eq!(Outcome::parse("patched: "), None);
        assert_eq!(Outcome::parse("maybe"), None);
        assert!(Outcome::Cannot("a".into()).same_kind(&Outcome::Cannot("b".into())));
        assert!(!Outcome::Builds.same_kind(&Outcome::Patched(vec!["x".into()])));
    }

    #[test]
    fn embedded_table_has_every_release_and_one_default() {
        let t = Table::embedded();
        assert!(t.releases.len() >= 19);
        let d: Vec<_> = t.releases.iter().filter(|r| r.default).collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].known.version, "9.1.0+driver");
        assert_eq!(line_of((6, 12, 57)), Some("6.12"));
        assert_eq!(line_of((7, 3, 4)), Some("7.x"));
        assert_eq!(line_of((6, 6, 0)), None);
    }
}

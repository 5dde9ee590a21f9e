//! Splitting a batch over several runners with no coordination: every (kernel, driver) item
//! has a stable key, and `--shard K/N` keeps the items whose key falls in shard K of N. By
//! default an item's shard is a hash of its key alone, so N runners that list at different
//! moments still agree on every item they both see; `--balance cost` instead deals the items
//! of one fixed list (a plan file) to the shards by estimated cost, heaviest first.
//!
//! Pure: no IO, no clock. The cost model is an estimate from measured figures, not a promise.

use std::collections::BTreeMap;

use crate::pipeline::Driver;
use crate::repo::KernelRecord;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("--shard `{0}`: expected K/N with 1 <= K <= N (e.g. 2/4)")]
    Spec(String),
}

/// Shard K of N (1-based, as CI matrices count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard, Error> {
        let bad = || Error::Spec(s.to_owned());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// How items are dealt to shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// By a hash of each item's key: needs nothing but the item.
    #[default]
    Hash,
    /// By estimated cost over the whole list, heaviest first to the lightest shard: every
    /// runner must see the same list (give them one plan file).
    Cost,
}

impl std::str::FromStr for Balance {
    type Err = String;
    fn from_str(s: &str) -> Result<Balance, String> {
        match s {
            "hash" | "count" => Ok(Balance::Hash),
            "cost" => Ok(Balance::Cost),
            _ => Err(format!("unknown balance `{s}` (hash, cost)")),
        }
    }
}

/// One unit of work: a driver of a kernel.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Item {
    /// `target-id/arch/release/kernel-version/driver-version/driver`: what the shard is
    /// decided by.
    pub key: String,
    pub target: String,
    pub target_id: String,
    pub arch: String,
    pub release: String,
    pub kernel_version: String,
    pub driver: Driver,
    pub file: String,
    /// Estimated seconds of CPU to build it (see [`estimate`]).
    pub cost_seconds: f64,
}

impl Item {
    pub fn new(k: &KernelRecord, driver_version: &str, driver: Driver) -> Item {
        Item {
            key: key(k, driver_version, driver),
            target: k.target.clone(),
            target_id: k.target_id.clone(),
            arch: k.arch.uname_m().to_owned(),
            release: k.release.clone(),
            kernel_version: k.kernel_version.clone(),
            driver,
            // Falco's name: on Debian the package version, on Flatcar its release.
            file: driver.file_name(&k.target_id, &k.file_release(), &k.kernel_version),
            cost_seconds: estimate(k, driver),
        }
    }
}

/// The stable key of a driver of a kernel.
pub fn key(k: &KernelRecord, driver_version: &str, driver: Driver) -> String {
    format!(
        "{}/{}/{}/{}/{}/{}",
        k.target_id,
        k.arch.uname_m(),
        k.release,
        k.kernel_version,
        driver_version,
        driver
    )
}

/// The shard (1-based) a key falls in by hash: the first 8 bytes of its SHA-256, modulo N.
pub fn by_hash(key: &str, n: u32) -> u32 {
    let digest = crate::base::sha256(key.as_bytes());
    let x = u64::from_str_radix(&digest[..16], 16).expect("hex");
    (x % u64::from(n)) as u32 + 1
}

/// Estimated CPU seconds of one item, from measured figures (2026-11, 2 cores): a probe is
/// ~12 s of clang+llc, a module ~11 s of kbuild and gcc; each MB of header packages adds
/// ~0.1 s of download and unpacking. Lists without sizes (kernel-crawler) get the base cost.
pub fn estimate(k: &KernelRecord, driver: Driver) -> f64 {
    let base = match driver {
        Driver::Ebpf => 12.0,
        Driver::Kmod => 11.0,
    };
    let mb = k.packages.iter().map(|p| p.size).sum::<u64>() as f64 / 1_000_000.0;
    ((base + 0.1 * mb) * 10.0).round() / 10.0
}

/// Which shard each item falls in, by key.
pub fn assign(items: &[Item], n: u32, balance: Balance) -> BTreeMap<String, u32> {
    match balance {
        Balance::Hash => items
            .iter()
            .map(|i| (i.key.clone(), by_hash(&i.key, n)))
            .collect(),
        Balance::Cost => {
            // Longest processing time first: heaviest item to the lightest shard; ties by key
            // and by shard number, so every runner deals the same list the same way.
            let mut order: Vec<&Item> = items.iter().collect();
            order.sort_by(|a, b| {
                b.cost_seconds
                    .total_cmp(&a.cost_seconds)
                    .then_with(|| a.key.cmp(&b.key))
            });
            order.dedup_by(|a, b| a.key == b.key);
            let mut load = vec![0.0f64; n as usize];
            let mut out = BTreeMap::new();
            for i in order {
                let (lightest, _) = load
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(&b.0)))
                    .expect("n >= 1");
                load[lightest] += i.cost_seconds;
                out.insert(i.key.clone(), lightest as u32 + 1);
            }
            out
        }
    }
}

/// Each shard's items and estimated cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Load {
    pub shard: u32,
    pub items: usize,
    pub cost_seconds: f64,
}

/// The load of every shard, and the balance: the heaviest shard's cost over the mean (1.0 is
/// perfect; the batch's wall time follows the heaviest).
pub fn loads(items: &[Item], assigned: &BTreeMap<String, u32>, n: u32) -> (Vec<Load>, f64) {
    let mut loads: Vec<Load> = (1..=n)
        .map(|shard| Load {
            shard,
            items: 0,
            cost_seconds: 0.0,
        })
        .collect();
    for i in items {
        if let Some(&s) = assigned.get(&i.key) {
            let l = &mut loads[s as usize - 1];
            l.items += 1;
            l.cost_seconds += i.cost_seconds;
        }
    }
    for l in &mut loads {
        l.cost_seconds = (l.cost_seconds * 10.0).round() / 10.0;
    }
    let total: f64 = loads.iter().map(|l| l.cost_seconds).sum();
    let max = loads.iter().map(|l| l.cost_seconds).fold(0.0, f64::max);
    let balance = match total > 0.0 {
        true => max / (total / f64::from(n)),
        false => 1.0,
    };
    (loads, (balance * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Arch;

    fn kernel(release: &str, size: u64) -> KernelRecord {
        KernelRecord {
            target: "debian-bookworm".into(),
            target_id: "debian".into(),
            release: release.into(),
            kernel_version: "1".into(),
            arch: Arch::X86_64,
            origin: "bookworm".into(),
            packages: vec![crate::repo::PackageRef {
                name: format!("linux-headers-{release}"),
                version: "1".into(),
                url: String::new(),
                size,
                sha256: String::new(),
            }],
            unsigned_metadata: false,
        }
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_item_falls_in_exactly_one_shard_whatever_the_balance() {
        let items: Vec<Item> = (0..200)
            .flat_map(|i| {
                let k = kernel(&format!("6.1.0-{i}-amd64"), 10_000_000 + i * 100_000);
                [Driver::Ebpf, Driver::Kmod].map(|d| Item::new(&k, "9.1.0+driver", d))
            })
            .collect();
        for n in [1, 2, 3, 7] {
            for balance in [Balance::Hash, Balance::Cost] {
                let a = assign(&items, n, balance);
                assert_eq!(a.len(), items.len());
                assert!(a.values().all(|&s| (1..=n).contains(&s)));
                let (l, b) = loads(&items, &a, n);
                assert_eq!(l.iter().map(|l| l.items).sum::<usize>(), items.len());
                assert!(b >= 1.0, "{b}");
                if balance == Balance::Cost {
                    // LPT is within 4/3 of the optimum; with 400 similar items, near 1.
                    assert!(b < 1.02, "{n}: {b}");
                }
            }
        }
        // The hash of a key does not depend on the other items.
        let one = assign(&items[5..6], 3, Balance::Hash);
        assert_eq!(
            one[&items[5].key],
            assign(&items, 3, Balance::Hash)[&items[5].key]
        );
    }

    #[test]
    fn the_key_names_everything_that_makes_a_file() {
        let k = kernel("6.1.0-50-amd64", 0);
        assert_eq!(
            key(&k, "9.1.0+driver", Driver::Kmod),
            "debian/x86_64/6.1.0-50-amd64/1/9.1.0+driver/kmod"
        );
        assert_eq!(estimate(&k, Driver::Ebpf), 12.0);
    }
}

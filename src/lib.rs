//! probeforge: build Falco's legacy eBPF probes for many Linux kernels, without Docker, make or
//! root.
//!
//! The pipeline, one module per stage, data flowing one way:
//! repo -> http (fetch) -> extract -> kernel -> (driver, toolchain) -> flags -> compile ->
//! validate -> publish.

pub mod base;
pub mod extract;
pub mod kernel;
pub mod kmod;
pub mod loader;

pub use kernel::{Arch, KernelTree};
pub mod check;
pub mod command;
pub mod compile;
pub mod driver;
pub mod driverkit;
pub mod farm;
pub mod flags;
pub mod http;
pub mod merge;
pub mod names;
pub mod patch;
pub mod pipeline;
pub mod publish;
pub mod releases;
pub mod repo;
pub mod report;
pub mod session;
pub mod shard;
pub mod site;
pub mod toolchain;
pub mod trust;
pub mod validate;
pub mod vanilla;
pub mod verify;
pub mod watch;

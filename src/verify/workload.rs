//! What the loader does in the VM to prove a probe captures, shared by the loader
//! (`src/bin/probeforge-init/`, which also builds alone from `init/` for other arches) and
//! the host that checks the events.

/// The file the loader opens (after creating it) while capturing.
pub const MARKER_PATH: &str = "/tmp/probeforge-marker";
/// The argument the loader re-executes itself with (`/init <this>`), which makes it exit at
/// once; the exec is the workload's second half.
pub const EXEC_ARG: &str = "probeforge-exec-marker";
/// Where the loader is in the VM, hence the executable the exec event must name.
pub const INIT_PATH: &str = "/init";
/// Where the host puts the userspace's instructions (`verify --userspace`): present, the
/// loader runs that userspace on each probe instead of loading the probe itself.
pub const USERSPACE_MANIFEST: &str = "/userspace.json";

//! CPU placement: which CPUs the process may use, which of them the I/O thread, the core and
//! the housekeeping threads get, and pinning that degrades to a clear warning instead of failing
//! the run.
//!
//! **Where the defaults come from.** The CPUs the process is allowed ([`allowed_cpus`]: the
//! scheduler's affinity mask of the process, intersected with the cgroup v2
//! `cpuset.cpus.effective` of its cgroup where that file exists) in ascending order: the I/O
//! thread gets the first, the core the second ([`Placement::choose`]). With only one allowed
//! CPU nothing is pinned (one warning says so). An explicit `engine.io_cpu`/`engine.core_cpu`
//! wins (-1: do not pin). Every other thread (metrics, REST, control, recorder, the simulator
//! in `demo`, ...) goes to the housekeeping set: `engine.housekeeping_cpus`, by default the I/O
//! CPU, and never the core's CPU.
//!
//! The cpuset list format (`0-3,8,10-11`) is parsed by [`parse_cpu_list`].

use std::path::{Path, PathBuf};

/// Pins the calling thread to `cpu`. On a machine without that CPU, or where the OS refuses,
/// prints one warning naming the thread and carries on unpinned. Returns whether it pinned.
pub fn pin_current_thread(role: &str, cpu: Option<usize>) -> bool {
    use rustix::thread::{sched_setaffinity, CpuSet};
    let Some(cpu) = cpu else {
        return false;
    };
    // The process's CPUs, not this thread's: a thread spawned by one placed on the housekeeping
    // CPUs inherits that narrower mask, and may still move to the core's CPU.
    let have = process_cpus();
    if cpu >= CpuSet::MAX_CPU || !(have.is_empty() || have.contains(&cpu)) {
        tracing::warn!(
            target: "tickline::pin",
            "{role} thread not pinned: CPU {cpu} is not available here (CPUs: {}); running unpinned",
            if have.is_empty() { "unknown".to_string() } else { format_cpu_list(&have) }
        );
        return false;
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    match sched_setaffinity(None, &set) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(target: "tickline::pin", "{role} thread not pinned: the OS refused affinity to CPU {cpu} ({e}); running unpinned");
            false
        }
    }
}

/// Restricts the calling thread to the CPUs in `cpus` (a housekeeping set). An empty set, or a
/// set the OS refuses, leaves the thread as it is (with one warning for a refusal). Returns
/// whether the mask was set.
pub fn pin_current_thread_to_set(role: &str, cpus: &[usize]) -> bool {
    use rustix::thread::{sched_setaffinity, CpuSet};
    if cpus.is_empty() {
        return false;
    }
    let mut set = CpuSet::new();
    for &c in cpus.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(c);
    }
    match sched_setaffinity(None, &set) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                target: "tickline::pin",
                "{role} thread not placed on CPUs {}: {e}; running where it was",
                format_cpu_list(cpus)
            );
            false
        }
    }
}

/// The CPUs thread `tid` may run on (`None`: the calling thread), ascending; empty if unknown.
pub fn thread_cpus(tid: Option<i32>) -> Vec<usize> {
    use rustix::thread::{sched_getaffinity, CpuSet, Pid};
    let pid = tid.and_then(Pid::from_raw);
    match sched_getaffinity(pid) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Parses a cpuset list (`0-3,8,10-11`; blanks and a trailing newline allowed; empty: no CPU)
/// into ascending, deduplicated CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("cpu list {s:?}: {t:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b >= 1 << 16 {
                    return Err(format!("cpu list {s:?}: bad range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Formats CPUs back into the list format (`0-3,8`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The cgroup v2 `cpuset.cpus.effective` file of this process's cgroup (from
/// `/proc/self/cgroup`'s `0::/path` line), if it exists.
pub fn cgroup_cpuset_file() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = Path::new("/sys/fs/cgroup");
    [root.join(rel.trim_start_matches('/')), root.to_path_buf()]
        .into_iter()
        .map(|d| d.join("cpuset.cpus.effective"))
        .find(|p| p.is_file())
}

/// The CPUs this process may run on, ascending: its affinity mask (`sched_getaffinity`),
/// intersected with the CPUs listed in `cgroup_file` (a `cpuset.cpus.effective`) when given
/// and readable. An unreadable or empty cgroup list is ignored.
pub fn allowed_cpus(cgroup_file: Option<&Path>) -> Vec<usize> {
    let mask = thread_cpus(Some(rustix::process::getpid().as_raw_nonzero().get()));
    let mask = if mask.is_empty() {
        thread_cpus(None)
    } else {
        mask
    };
    let cg = cgroup_file
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| parse_cpu_list(&t).ok())
        .filter(|l| !l.is_empty());
    match cg {
        Some(cg) if !mask.is_empty() => {
            let both: Vec<usize> = mask.iter().copied().filter(|c| cg.contains(c)).collect();
            if both.is_empty() {
                mask
            } else {
                both
            }
        }
        Some(cg) => cg,
        None => mask,
    }
}

/// [`allowed_cpus`] of this process with its cgroup's file, read once: the first call is made
/// before any thread is placed ([`Placement::detect`], or the first pinning), since placing the
/// main thread narrows the affinity mask the kernel reports for the process.
pub fn process_cpus() -> Vec<usize> {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| allowed_cpus(cgroup_cpuset_file().as_deref()))
        .clone()
}

/// Where a run's threads go: see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The I/O (or replay feed) thread's CPU; `None`: unpinned.
    pub io: Option<usize>,
    /// The core thread's CPU; `None`: unpinned.
    pub core: Option<usize>,
    /// Every other thread's CPUs; empty: left where they are.
    pub housekeeping: Vec<usize>,
}

impl Placement {
    /// Chooses the placement from the allowed CPUs and the config: `io`/`core` are
    /// `engine.io_cpu`/`engine.core_cpu` (`None`: choose; -1: do not pin), `housekeeping`
    /// `engine.housekeeping_cpus` (`None`: the I/O CPU). Returns it with the warnings to print
    /// (one line each).
    pub fn choose(
        allowed: &[usize],
        io: Option<i64>,
        core: Option<i64>,
        housekeeping: Option<&[usize]>,
    ) -> (Placement, Vec<String>) {
        let mut warnings = Vec::new();
        let explicit = |v: Option<i64>| v.map(|v| usize::try_from(v).ok());
        let (io_cfg, core_cfg) = (explicit(io), explicit(core));
        let mut auto = allowed.iter().copied();
        let core = match core_cfg {
            Some(c) => c,
            None => match (allowed.len(), io_cfg) {
                (0 | 1, _) => None,
                (_, Some(Some(i))) => allowed.iter().copied().find(|&c| c != i),
                _ => allowed.get(1).copied(),
            },
        };
        let io = match io_cfg {
            Some(i) => i,
            None if allowed.len() < 2 && core_cfg.is_none() => None,
            None => auto.find(|&c| Some(c) != core),
        };
        if allowed.len() < 2 && (io_cfg.is_none() || core_cfg.is_none()) {
            warnings.push(format!(
                "only {} CPU allowed here ({}): the I/O and core threads run unpinned; latency will include the scheduler's",
                allowed.len(),
                if allowed.is_empty() { "unknown".to_string() } else { format_cpu_list(allowed) }
            ));
        }
        if io.is_some() && io == core {
            warnings.push(format!(
                "engine.io_cpu and engine.core_cpu are both CPU {}: the core shares its CPU",
                io.unwrap_or_default()
            ));
        }
        let housekeeping = match housekeeping {
            Some(list) => {
                let mut list: Vec<usize> = list.to_vec();
                if !allowed.is_empty() && list.iter().any(|c| !allowed.contains(c)) {
                    warnings.push(format!(
                        "engine.housekeeping_cpus {}: only CPUs {} are allowed here; using those of them that are",
                        format_cpu_list(&list),
                        format_cpu_list(allowed)
                    ));
                    list.retain(|c| allowed.contains(c));
                }
                if core.is_some_and(|c| list.contains(&c)) {
                    warnings.push(format!(
                        "engine.housekeeping_cpus {} includes the core's CPU {}: housekeeping threads may preempt the core",
                        format_cpu_list(&list),
                        core.unwrap_or_default()
                    ));
                }
                list
            }
            None => match (io, core) {
                // An I/O CPU that is not there (it warns when pinned): the other allowed CPUs.
                (Some(i), _) if allowed.is_empty() || allowed.contains(&i) => vec![i],
                (Some(_), Some(c)) => allowed.iter().copied().filter(|&x| x != c).collect(),
                (Some(_), None) => Vec::new(),
                (None, Some(c)) => allowed.iter().copied().filter(|&x| x != c).collect(),
                (None, None) => Vec::new(),
            },
        };
        (
            Placement {
                io,
                core,
                housekeeping,
            },
            warnings,
        )
    }

    /// [`Placement::choose`] from this process's allowed CPUs ([`process_cpus`]), printing the
    /// warnings on stderr.
    pub fn detect(io: Option<i64>, core: Option<i64>, housekeeping: Option<&[usize]>) -> Placement {
        let allowed = process_cpus();
        let (p, warnings) = Placement::choose(&allowed, io, core, housekeeping);
        for w in warnings {
            tracing::warn!(target: "tickline::pin", "{w}");
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cpu_warns_and_continues() {
        assert!(!pin_current_thread("test", Some(100_000)));
        assert!(!pin_current_thread("test", None));
        assert!(!pin_current_thread_to_set("test", &[]));
    }

    #[test]
    fn parses_the_cpuset_list_format() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list(" 5 , 2,2 ").unwrap(), vec![2, 5]);
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_list("3-1").unwrap_err().contains("3-1"));
        assert!(parse_cpu_list("a").unwrap_err().contains("\"a\""));
        assert!(parse_cpu_list("1-").is_err());
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

    fn fake_cgroup(name: &str, text: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("tickline-pin-{}-{name}.cpus", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn allowed_cpus_intersect_the_cgroup_file() {
        let mask = thread_cpus(Some(rustix::process::getpid().as_raw_nonzero().get()));
        assert!(!mask.is_empty());
        // A cgroup list naming only the last allowed CPU narrows the set to it.
        let last = *mask.last().unwrap();
        let f = fake_cgroup("last", &format!("{last}\n"));
        assert_eq!(allowed_cpus(Some(&f)), vec![last]);
        // A list that shares no CPU with the mask, an empty one, or no file: the mask.
        let f2 = fake_cgroup("none", "4000-4001\n");
        assert_eq!(allowed_cpus(Some(&f2)), mask);
        let f3 = fake_cgroup("empty", "\n");
        assert_eq!(allowed_cpus(Some(&f3)), mask);
        assert_eq!(allowed_cpus(Some(Path::new("/nonexistent/cpus"))), mask);
        for p in [f, f2, f3] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn default_placement_comes_from_the_allowed_cpus() {
        let f = fake_cgroup("choice", "2-3,6\n");
        let allowed = parse_cpu_list(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let _ = std::fs::remove_file(f);
        let (p, w) = Placement::choose(&allowed, None, None, None);
        assert_eq!(
            p,
            Placement {
                io: Some(2),
                core: Some(3),
                housekeeping: vec![2]
            }
        );
        assert!(w.is_empty(), "{w:?}");
        // One CPU: nothing pinned, one warning.
        let (p, w) = Placement::choose(&[5], None, None, None);
        assert_eq!(p, Placement::default());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("only 1 CPU"), "{w:?}");
        // Explicit values win; -1 is unpinned; the housekeeping set follows the I/O CPU.
        let (p, _) = Placement::choose(&allowed, Some(6), Some(2), None);
        assert_eq!((p.io, p.core, p.housekeeping), (Some(6), Some(2), vec![6]));
        let (p, _) = Placement::choose(&allowed, Some(-1), Some(-1), None);
        assert_eq!(p, Placement::default());
        // io unpinned, core pinned: housekeeping is every allowed CPU but the core's.
        let (p, _) = Placement::choose(&allowed, Some(-1), None, None);
        assert_eq!((p.io, p.core, p.housekeeping), (None, Some(3), vec![2, 6]));
        // Core given, io chosen: the first allowed CPU that is not the core's.
        let (p, _) = Placement::choose(&allowed, None, Some(2), None);
        assert_eq!((p.io, p.core), (Some(3), Some(2)));
        // An explicit housekeeping set is kept; one with the core's CPU is warned about.
        // A housekeeping set outside the allowed CPUs is cut to them; a missing I/O CPU
        // does not become the housekeeping set.
        let (p, w) = Placement::choose(&allowed, None, None, Some(&[6, 4000]));
        assert_eq!(p.housekeeping, vec![6]);
        assert!(w[0].contains("4000"), "{w:?}");
        let (p, _) = Placement::choose(&allowed, Some(4000), Some(4001), None);
        assert_eq!(p.housekeeping, vec![2, 3, 6]);
        let (p, w) = Placement::choose(&allowed, None, None, Some(&[6]));
        assert_eq!(p.housekeeping, vec![6]);
        assert!(w.is_empty());
        let (_, w) = Placement::choose(&allowed, None, None, Some(&[3, 6]));
        assert!(w[0].contains("core's CPU 3"), "{w:?}");
    }
}

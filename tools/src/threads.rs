//! The threads of a run: spawned named and placed, registered, and each one's context switches
//! and page faults counted for the summary.
//!
//! **One API for every thread.** [`spawn`], [`spawn_scoped`] and [`spawn_housekeeping`] name
//! the thread, place it ([`Place`]: its own CPU for the I/O and core threads, the run's
//! housekeeping CPUs for every other one, so nothing but the core runs on the core's CPU) and
//! register it with the run it was spawned from. A run is a [`RunThreads`] the entry point
//! (`tickline` itself, or `replay`/`run_live` for a library caller) creates and [`enter`s]
//! on its thread; spawned threads inherit it (a thread-local handed from parent to child), so
//! a control connection thread spawned by the control thread lands in the same run. A thread
//! spawned outside any run is named and, for its own CPU, pinned, but not registered.
//!
//! **What is counted, and when.** Each registered thread reads its own counters at its start
//! and at its end (voluntary and involuntary context switches from
//! `/proc/thread-self/status`, minor and major page faults from `/proc/thread-self/stat`, the
//! same figures as `getrusage(RUSAGE_THREAD)`), never in a loop: reading them costs a few
//! microseconds of file reads, so the core reads them before its first poll and after its last.
//! [`RunThreads::report`] lists every registered thread with the difference, reads the
//! threads still running from `/proc/self/task/<tid>` (their count so far), and adds every other
//! thread of the process it finds there (`other`: threads spawned by libraries or by the venue
//! simulator in `demo`, counted since they started), each with the CPUs it may run on. The
//! process's page faults over the run come from `/proc/self/stat`.
//!
//! **Memory.** [`lock_memory`] tries `mlockall(MCL_CURRENT | MCL_FUTURE)` (which also faults in
//! every page mapped so far) where it cannot starve later allocations (the process has
//! `CAP_IPC_LOCK` or an unlimited `RLIMIT_MEMLOCK`) and says in one line why not elsewhere.
//! [`prefault_stack`] faults in the first pages of the calling thread's stack.
//!
//! [`enter`s]: RunThreads::enter

use crate::pin::{pin_current_thread, pin_current_thread_to_set, thread_cpus, Placement};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

/// Where a spawned thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The run's housekeeping CPUs (any thread that is not the I/O thread or the core).
    Housekeeping,
    /// The I/O (or replay feed) thread's own CPU (`None`: unpinned).
    Io(Option<usize>),
    /// The core thread's own CPU (`None`: unpinned).
    Core(Option<usize>),
}

impl Place {
    fn role(self) -> &'static str {
        match self {
            Place::Housekeeping => "housekeeping",
            Place::Io(_) => "io",
            Place::Core(_) => "core",
        }
    }
}

/// A thread's context switches and page faults (a count so far, or a difference).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Voluntary context switches (the thread blocked or yielded).
    pub voluntary: u64,
    /// Involuntary context switches (the thread was preempted).
    pub involuntary: u64,
    /// Minor page faults.
    pub minor_faults: u64,
    /// Major page faults (disk).
    pub major_faults: u64,
}

impl Usage {
    /// The counters of `dir`, a `/proc` directory of a task (`/proc/thread-self`,
    /// `/proc/self/task/<tid>`) or of the process (`/proc/self`); `None` if unreadable.
    pub fn read(dir: &str) -> Option<Usage> {
        Usage::read_files(&format!("{dir}/status"), &format!("{dir}/stat"))
    }

    /// Reads and parses the two files into stack buffers: no allocation, so a thread can read
    /// its own counters at its end while another thread's allocations are being counted.
    fn read_files(status: &str, stat: &str) -> Option<Usage> {
        let mut status_buf = [0u8; 8192];
        let mut stat_buf = [0u8; 1024];
        let status = read_small(status, &mut status_buf)?;
        let stat = read_small(stat, &mut stat_buf)?;
        Usage::parse(status, stat)
    }

    fn parse(status: &str, stat: &str) -> Option<Usage> {
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // stat: `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so count
        // from the last ')'. After it: state(0) ppid pgrp session tty tpgid flags minflt(7)
        // cminflt majflt(9).
        let rest = &stat[stat.rfind(')')? + 1..];
        let num = |i: usize| rest.split_whitespace().nth(i)?.parse::<u64>().ok();
        Some(Usage {
            voluntary: field("voluntary_ctxt_switches:").unwrap_or(0),
            involuntary: field("nonvoluntary_ctxt_switches:").unwrap_or(0),
            minor_faults: num(7)?,
            major_faults: num(9)?,
        })
    }

    /// The calling thread's counters (no allocation).
    pub fn this_thread() -> Usage {
        Usage::read_files("/proc/thread-self/status", "/proc/thread-self/stat").unwrap_or_default()
    }

    /// The whole process's page faults (its switch counts are the main thread's only).
    pub fn process() -> Usage {
        Usage::read("/proc/self").unwrap_or_default()
    }

    /// `self - earlier`, field by field (0 where a counter went backwards).
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
        }
    }
}

/// One thread of a run, for the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadReport {
    /// The thread's name.
    pub name: String,
    /// Its kernel thread id.
    pub tid: i32,
    /// `main`, `core`, `io`, `housekeeping`, or `other` (not spawned through this module).
    pub role: String,
    /// The CPUs it may run on (empty: unknown).
    pub cpus: Vec<usize>,
    /// Its switches and faults during the run (for `other` threads: since they started).
    pub usage: Usage,
    /// Whether it was still running when the report was made.
    pub running: bool,
}

/// Every thread of a run and the process's page faults over it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadsReport {
    /// The threads, the run's own first, in the order they started.
    pub threads: Vec<ThreadReport>,
    /// The process's page faults over the run (switch counts are per thread, above).
    pub process: Usage,
    /// The core's CPU, if pinned.
    pub core_cpu: Option<usize>,
    /// What [`lock_memory`] did, if it was asked.
    pub memory_lock: Option<MemoryLock>,
}

impl ThreadsReport {
    /// The core thread's entry, if there is one.
    pub fn core(&self) -> Option<&ThreadReport> {
        self.threads.iter().find(|t| t.role == "core")
    }

    /// Threads other than the core that may run on the core's CPU and were switched in the
    /// run: the candidates for whatever preempted the core.
    pub fn sharing_core_cpu(&self) -> Vec<&ThreadReport> {
        let Some(cpu) = self.core_cpu else {
            return Vec::new();
        };
        self.threads
            .iter()
            .filter(|t| t.role != "core" && (t.cpus.is_empty() || t.cpus.contains(&cpu)))
            .filter(|t| t.usage.voluntary + t.usage.involuntary > 0)
            .collect()
    }
}

#[derive(Debug)]
struct Entry {
    name: String,
    tid: i32,
    role: &'static str,
    cpus: Vec<usize>,
    start: Usage,
    end: Option<Usage>,
}

/// The threads of one run: see the [module docs](self).
#[derive(Debug)]
pub struct RunThreads {
    placement: Placement,
    start: Usage,
    entries: Mutex<Vec<Entry>>,
    memory_lock: Mutex<Option<MemoryLock>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RunThreads>>> = const { RefCell::new(None) };
}

/// The run the calling thread belongs to, if any.
pub fn current() -> Option<Arc<RunThreads>> {
    CURRENT.with(|c| c.borrow().clone())
}

fn set_current(run: Option<Arc<RunThreads>>) -> Option<Arc<RunThreads>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), run))
}

/// While alive, the calling thread belongs to a run (see [`RunThreads::enter`]).
#[derive(Debug)]
pub struct Entered {
    previous: Option<Arc<RunThreads>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        set_current(self.previous.take());
    }
}

/// A registered thread's registration: records its end counters when dropped.
#[derive(Debug)]
pub struct Registered {
    run: Option<(Arc<RunThreads>, usize)>,
    /// Whether the thread got the CPU(s) it was placed on.
    pub placed: bool,
}

impl Registered {
    /// Starts the thread's count again from now: for a thread whose start-up work (pinning,
    /// pre-faulting) should not count as the run's.
    pub fn restart_count(&self) {
        if let Some((run, i)) = &self.run {
            let now = Usage::this_thread();
            if let Ok(mut e) = run.entries.lock() {
                if let Some(e) = e.get_mut(*i) {
                    e.start = now;
                }
            }
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some((run, i)) = self.run.take() {
            let end = Usage::this_thread();
            if let Ok(mut e) = run.entries.lock() {
                if let Some(e) = e.get_mut(i) {
                    e.end = Some(end);
                }
            }
        }
    }
}

impl RunThreads {
    /// A run with this placement; the process's fault counters start now.
    pub fn new(placement: Placement) -> Arc<RunThreads> {
        Arc::new(RunThreads {
            placement,
            start: Usage::process(),
            entries: Mutex::new(Vec::new()),
            memory_lock: Mutex::new(None),
        })
    }

    /// The placement the run's threads get.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Makes the calling thread part of this run (threads it spawns through this module join
    /// the run) and registers it as `main`, placed on the housekeeping CPUs when `place_caller`
    /// (so threads it spawns by other means, such as a library's, inherit that placement).
    pub fn enter(self: &Arc<Self>, place_caller: bool) -> (Entered, Registered) {
        let previous = set_current(Some(self.clone()));
        let placed =
            place_caller && pin_current_thread_to_set("main", &self.placement.housekeeping);
        let mut reg = self.register("main", "main");
        reg.placed = placed;
        (Entered { previous }, reg)
    }

    fn register(self: &Arc<Self>, name: &str, role: &'static str) -> Registered {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let entry = Entry {
            name: name.to_string(),
            tid,
            role,
            cpus: thread_cpus(None),
            start: Usage::this_thread(),
            end: None,
        };
        let run = self.entries.lock().ok().map(|mut e| {
            e.push(entry);
            (self.clone(), e.len() - 1)
        });
        Registered { run, placed: false }
    }

    /// Records what [`lock_memory`] did, for the report.
    pub fn set_memory_lock(&self, m: MemoryLock) {
        if let Ok(mut g) = self.memory_lock.lock() {
            *g = Some(m);
        }
    }

    /// Every thread of the run so far and of the process now: see the [module docs](self).
    pub fn report(&self) -> ThreadsReport {
        let mut threads = Vec::new();
        let mut seen = Vec::new();
        if let Ok(entries) = self.entries.lock() {
            for e in entries.iter() {
                let (now, running) = match e.end {
                    Some(end) => (end, false),
                    None => (
                        Usage::read(&format!("/proc/self/task/{}", e.tid)).unwrap_or(e.start),
                        true,
                    ),
                };
                let cpus = if running {
                    thread_cpus(Some(e.tid))
                } else {
                    e.cpus.clone()
                };
                if running {
                    seen.push(e.tid);
                }
                threads.push(ThreadReport {
                    name: e.name.clone(),
                    tid: e.tid,
                    role: e.role.to_string(),
                    cpus,
                    usage: now.since(&e.start),
                    running,
                });
            }
        }
        threads.extend(other_threads(&seen));
        ThreadsReport {
            threads,
            process: Usage::process().since(&self.start),
            core_cpu: self.placement.core,
            memory_lock: self.memory_lock.lock().ok().and_then(|g| g.clone()),
        }
    }
}

/// Reads a small file into `buf` (no allocation: the path fits std's on-stack C string).
fn read_small<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a str> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..n]).ok()
}

/// The process's threads not in `known` (and not already ended), read from `/proc/self/task`.
fn other_threads(known: &[i32]) -> Vec<ThreadReport> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out: Vec<ThreadReport> = dir
        .filter_map(|d| d.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|tid| !known.contains(tid))
        .filter_map(|tid| {
            let base = format!("/proc/self/task/{tid}");
            let name = std::fs::read_to_string(format!("{base}/comm")).ok()?;
            Some(ThreadReport {
                name: name.trim().to_string(),
                tid,
                role: "other".into(),
                cpus: thread_cpus(Some(tid)),
                usage: Usage::read(&base)?,
                running: true,
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// Places and registers the calling thread (for a thread not started by [`spawn`], such as the
/// core loop run on the caller's own thread). Keep the result alive until the thread's work is
/// done.
pub fn register_current(name: &str, place: Place) -> Registered {
    register_in(current(), name, place)
}

fn register_in(run: Option<Arc<RunThreads>>, name: &str, place: Place) -> Registered {
    // Warnings name the thread as users know it: `feed`, `I/O`, `core`, `metrics`, ...
    let label = match name.strip_prefix("tickline-").unwrap_or(name) {
        "io" => "I/O",
        other => other,
    };
    let placed = match (place, &run) {
        (Place::Io(cpu) | Place::Core(cpu), _) => pin_current_thread(label, cpu),
        (Place::Housekeeping, Some(r)) => {
            pin_current_thread_to_set(label, &r.placement.housekeeping)
        }
        (Place::Housekeeping, None) => false,
    };
    match run {
        Some(r) => {
            let mut reg = r.register(name, place.role());
            reg.placed = placed;
            reg
        }
        None => Registered { run: None, placed },
    }
}

/// Spawns a named thread, placed as `place` says and registered with the caller's run
/// (`None`: the thread joins the run but places and registers itself with
/// [`register_current`], as the core loop does).
pub fn spawn<F, T>(name: &str, place: Option<Place>, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let run = current();
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || in_run(run, &thread_name, place, f))
}

/// [`spawn`], the thread in `scope`.
pub fn spawn_scoped<'scope, 'env, F, T>(
    scope: &'scope Scope<'scope, 'env>,
    name: &str,
    place: Option<Place>,
    f: F,
) -> std::io::Result<ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    let run = current();
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, move || in_run(run, &thread_name, place, f))
}

fn in_run<T>(
    run: Option<Arc<RunThreads>>,
    name: &str,
    place: Option<Place>,
    f: impl FnOnce() -> T,
) -> T {
    set_current(run.clone());
    let _reg = place.map(|p| register_in(run, name, p));
    f()
}

/// [`spawn`] on the housekeeping CPUs: for every thread that is not the I/O thread or the core.
pub fn spawn_housekeeping<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn(name, Some(Place::Housekeeping), f)
}

/// The run the caller belongs to, or a new one for a library caller that made none: placed as
/// `io`/`core` say, housekeeping on the I/O CPU. The [`Entered`] guard (if any) ends the
/// caller's membership of the new run.
pub fn current_or_new(
    io: Option<usize>,
    core: Option<usize>,
) -> (Arc<RunThreads>, Option<(Entered, Registered)>) {
    match current() {
        Some(r) => (r, None),
        None => {
            let r = RunThreads::new(Placement {
                io,
                core,
                housekeeping: io.into_iter().collect(),
            });
            let g = r.enter(false);
            (r, Some(g))
        }
    }
}

/// What [`lock_memory`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryLock {
    /// Every page mapped now and later is locked (and was faulted in).
    Locked,
    /// Not locked; why.
    Refused(String),
}

/// Tries `mlockall(MCL_CURRENT | MCL_FUTURE)` where it cannot make later allocations fail (the
/// process has `CAP_IPC_LOCK`, or `RLIMIT_MEMLOCK` is unlimited); otherwise, or when the kernel
/// refuses, prints one warning line and carries on.
pub fn lock_memory() -> MemoryLock {
    use rustix::mm::{mlockall, MlockAllFlags};
    use rustix::process::{getrlimit, Resource};
    let unlimited = getrlimit(Resource::Memlock).current.is_none();
    let r = if unlimited || has_cap_ipc_lock() {
        match mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE) {
            Ok(()) => MemoryLock::Locked,
            Err(e) => MemoryLock::Refused(format!("mlockall refused: {e}")),
        }
    } else {
        let limit = getrlimit(Resource::Memlock).current.unwrap_or(0);
        MemoryLock::Refused(format!(
            "no CAP_IPC_LOCK and RLIMIT_MEMLOCK is {} KiB (locking would make later allocations fail)",
            limit / 1024
        ))
    };
    if let MemoryLock::Refused(why) = &r {
        tracing::warn!(target: "tickline::threads", "memory not locked ({why}); page faults may add to the latency tail (engine.mlockall = false hides this)");
    }
    r
}

/// Whether the process holds `CAP_IPC_LOCK` (bit 14 of `CapEff` in `/proc/self/status`).
fn has_cap_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

/// Faults in the first 256 KiB of the calling thread's stack (writing each page once), so the
/// loop that runs next does not take those faults.
#[inline(never)]
pub fn prefault_stack() {
    let mut buf = [0u8; 256 * 1024];
    for i in (0..buf.len()).step_by(4096) {
        buf[i] = 1;
    }
    std::hint::black_box(&mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_threads_counters() {
        let a = Usage::this_thread();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let b = Usage::this_thread();
        // A sleep blocks, so it is at least one voluntary switch.
        assert!(b.since(&a).voluntary >= 1, "{a:?} {b:?}");
        assert!(Usage::process().minor_faults > 0);
        assert_eq!(Usage::read("/nonexistent"), None);
    }

    #[test]
    fn a_run_lists_its_threads_with_their_counters() {
        let run = RunThreads::new(Placement::default());
        let (_entered, _main) = run.enter(false);
        let h = spawn_housekeeping("tl-test-hk", || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            // A thread spawned from a registered thread joins the same run.
            spawn("tl-test-inner", Some(Place::Core(None)), || {
                current().is_some()
            })
            .unwrap()
            .join()
            .unwrap()
        })
        .unwrap();
        assert!(h.join().unwrap());
        let r = run.report();
        let names: Vec<&str> = r.threads.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            &names[..3],
            &["main", "tl-test-hk", "tl-test-inner"],
            "{names:?}"
        );
        let hk = &r.threads[1];
        assert_eq!(hk.role, "housekeeping");
        assert!(!hk.running);
        assert!(hk.usage.voluntary >= 1, "{hk:?}");
        assert!(!hk.cpus.is_empty());
        assert_eq!(r.threads[2].role, "core");
        assert!(r.threads[0].running);
        drop(_entered);
        assert!(current().is_none());
    }
}

//! The journal file: [`JournalWriter`] appends records with the chosen [`FsyncPolicy`], and
//! [`JournalLock`] keeps one engine per journal.
//!
//! # Durability
//!
//! Each record is encoded into one reused buffer and written with one `write` call, then synced
//! according to the [`FsyncPolicy`] (`fdatasync`). A new file's header is synced with the file
//! and its directory entry, and a truncation is synced before anything is appended after it
//! (except under [`FsyncPolicy::Never`]). After a failed `fdatasync` the writer refuses further
//! appends (the kernel may have dropped the unsynced pages; reopen to see what reached the
//! disk); after a failed `write` it cuts the file back to its last complete record, or refuses
//! further appends if it cannot. An append that returned an error means: do not send the order.
//!
//! The writer makes a syscall per record (two with `Always`), so it belongs to the thread that
//! sends orders, never to the core.

use super::format::*;
use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

/// When [`JournalWriter::append`] makes records durable with `fdatasync`.
///
/// The policy changes only when data reaches the disk, never what is written: every policy
/// produces the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every record: an appended intent survives a power cut.
    Always,
    /// `fdatasync` after every `n` records (`EveryN(0)` behaves as `EveryN(1)`).
    EveryN(u32),
    /// `fdatasync` on an append at least this long after the last sync. There is no background
    /// thread: call [`JournalWriter::sync_if_due`] from a timer to bound an idle journal's
    /// unsynced records too.
    Interval(Duration),
    /// Never sync (the kernel writes back when it likes); [`JournalWriter::sync`] still syncs.
    Never,
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Appends records to a journal file. See the module docs for the start-up procedure.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    policy: FsyncPolicy,
    buf: Vec<u8>,
    /// File length: the end of the last complete record.
    len: u64,
    records: u64,
    unsynced: u32,
    last_sync: Instant,
    truncated: Option<TailState>,
    /// A failed `fdatasync` (or a failed write that could not be undone): appends are refused.
    failed: bool,
    /// The journal's lock, kept for as long as the writer lives.
    lock: Option<JournalLock>,
}

impl fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalWriter")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("len", &self.len)
            .field("records", &self.records)
            .field("unsynced", &self.unsynced)
            .field("truncated", &self.truncated)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Makes a new directory entry durable.
pub(super) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl JournalWriter {
    /// Opens `path` for appending, creating it (header stamped with the wall clock) if missing or
    /// empty. An existing file is validated first: a torn tail is truncated ([`Self::truncated`]
    /// says what was cut), a corrupt record is refused with [`JournalError::CorruptRecord`], and
    /// a foreign or damaged header is refused; refused files are not touched.
    pub fn open(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<Self, JournalError> {
        Self::open_with_created_ns(path, policy, crate::orders::clock::system_wall_ns())
    }

    /// [`Self::open`] with the creation time to write if the header is new (reproducible files).
    pub fn open_with_created_ns(
        path: impl AsRef<Path>,
        policy: FsyncPolicy,
        created_ns: u64,
    ) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let sync = policy != FsyncPolicy::Never;
        let mut records = 0u64;
        let (len, truncated) = if bytes.is_empty() {
            file.write_all(&encode_header(created_ns))?;
            if sync {
                file.sync_all()?;
                sync_parent_dir(path)?;
            }
            (HEADER_LEN as u64, None)
        } else {
            let mut r = JournalReader::new(&bytes)?;
            for _ in r.by_ref() {
                records += 1;
            }
            match r.tail() {
                Some(TailState::Corrupt { offset }) => {
                    return Err(JournalError::CorruptRecord { offset })
                }
                Some(tail @ TailState::Torn { offset, .. }) => {
                    file.set_len(offset)?;
                    let mut len = offset;
                    if offset == 0 {
                        file.write_all(&encode_header(created_ns))?;
                        len = HEADER_LEN as u64;
                    }
                    if sync {
                        file.sync_all()?;
                    }
                    (len, Some(tail))
                }
                Some(TailState::Clean) | None => (bytes.len() as u64, None),
            }
        };
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
            policy,
            buf: Vec::with_capacity(256),
            len,
            records,
            unsynced: 0,
            last_sync: Instant::now(),
            truncated,
            failed: false,
            lock: None,
        })
    }

    /// Appends one record (one `write`), then syncs if the policy says so. On `Ok` the record is
    /// in the file (and on disk if it was synced). On `Err`, for an intent, the order must not be
    /// sent: either nothing was written (a symbol that is empty or longer than
    /// [`MAX_SYMBOL_LEN`] or a payload over [`MAX_PAYLOAD`] is `InvalidInput`; a failed `write`
    /// is cut back off the file), or the record was written but its `fdatasync` failed, so it may
    /// or may not survive a power cut and the writer refuses further appends.
    pub fn append(&mut self, rec: &JournalRecord<'_>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "journal writer failed earlier (fdatasync or an undoable write); reopen the journal",
            ));
        }
        encode_record(rec, &mut self.buf)?;
        if let Err(e) = self.file.write_all(&self.buf) {
            // Cut a partial record off, so later records never follow a torn one.
            if self.file.set_len(self.len).is_err() {
                self.failed = true;
            }
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.records += 1;
        self.unsynced = self.unsynced.saturating_add(1);
        let due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EveryN(n) => self.unsynced >= n.max(1),
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// `fdatasync` now, whatever the policy. A failure is sticky: the writer refuses appends.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "journal writer failed earlier (fdatasync or an undoable write); reopen the journal",
            ));
        }
        if let Err(e) = self.file.sync_data() {
            self.failed = true;
            return Err(e);
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Under [`FsyncPolicy::Interval`], syncs if records are waiting and the interval has passed
    /// since the last sync; `Ok(true)` if it synced. Other policies: `Ok(false)`.
    pub fn sync_if_due(&mut self) -> io::Result<bool> {
        match self.policy {
            FsyncPolicy::Interval(d) if self.unsynced > 0 && self.last_sync.elapsed() >= d => {
                self.sync().map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// The torn tail [`Self::open`] cut off, as recovery reported it; `None` if it cut nothing.
    pub fn truncated(&self) -> Option<TailState> {
        self.truncated
    }

    /// Records in the file (those found at open plus those appended).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// File length: the end of the last complete record.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the journal holds no records.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records appended since the last `fdatasync`.
    pub fn unsynced(&self) -> u32 {
        self.unsynced
    }

    /// The policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `lock` (the journal's [`JournalLock`]) until the writer is dropped, so the lock
    /// lives exactly as long as something may append.
    pub fn hold_lock(&mut self, lock: JournalLock) {
        self.lock = Some(lock);
    }

    /// True when the writer holds the journal's lock.
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------------

/// An exclusive lock on a journal: one engine per journal.
///
/// The lock is a kernel lock (`flock`, through [`File::try_lock`]) on a sidecar file,
/// `<journal>.lock` ([`JournalLock::path_for`]), which holds the holder's process id as text. The
/// kernel releases it when the holder's file is closed, which includes the process dying in any
/// way (SIGKILL too), so a stale lock file never blocks a restart: only a live holder does. The
/// sidecar (not the journal itself) carries the lock because [`compact`](fn@super::compact) replaces the journal
/// file by a rename, which a lock on the journal's own inode would not survive. The sidecar is
/// never deleted (deleting it would let two processes lock two different files of one name).
///
/// Take it before anything else touches the journal (compaction, recovery, the writer), and keep
/// it for as long as orders may be sent: [`JournalWriter::hold_lock`] ties it to the writer.
pub struct JournalLock {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for JournalLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalLock")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JournalLock {
    /// The lock file of the journal at `journal`: its name with `.lock` appended.
    pub fn path_for(journal: &Path) -> PathBuf {
        let mut name = journal.as_os_str().to_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the journal at `journal` without waiting, and writes this process's
    /// id into the lock file. Another live holder: [`JournalError::Locked`] with its pid.
    pub fn acquire(journal: &Path) -> Result<JournalLock, JournalError> {
        let path = Self::path_for(journal);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // A pid is a few digits: read at most 32 bytes, whatever the file holds.
                let mut text = String::new();
                let pid = match (&mut file).take(32).read_to_string(&mut text) {
                    Ok(_) => text.trim().parse::<u32>().ok(),
                    Err(_) => None,
                };
                return Err(JournalError::Locked {
                    journal: journal.to_path_buf(),
                    lock: path,
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::Io(e)),
        }
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(JournalLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written in the lock file of `journal`, if it holds one (for messages and tests;
    /// says nothing about whether the lock is held).
    pub fn holder(journal: &Path) -> Option<u32> {
        let mut text = String::new();
        File::open(Self::path_for(journal))
            .ok()?
            .take(32)
            .read_to_string(&mut text)
            .ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for JournalLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first says so explicitly.
        let _ = self.file.unlock();
    }
}

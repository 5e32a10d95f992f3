//! Waking the I/O thread for an order while it sleeps in `epoll_wait` (see the session's
//! module docs, "Waking").

use std::sync::atomic::fence;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::OnceLock;
/// Wakes the I/O thread for an order when it sleeps in `epoll_wait`. Shared between the core
/// (which calls [`notify`](Self::notify)) and the I/O thread.
#[derive(Debug, Default)]
pub struct OrderWake {
    parked: AtomicBool,
    waker: OnceLock<mio::Waker>,
    wakes: AtomicU64,
}

impl OrderWake {
    /// A new one, to hand to both threads.
    pub fn new() -> Arc<OrderWake> {
        Arc::new(OrderWake::default())
    }

    /// Called after a command was pushed: wakes the I/O thread if it is parked.
    #[inline]
    pub fn notify(&self) {
        // Pairs with the fence in `park`: either the I/O thread sees the command before it
        // sleeps, or this sees it parked.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) {
            self.wake_now();
        }
    }

    #[cold]
    fn wake_now(&self) {
        if let Some(w) = self.waker.get() {
            if w.wake().is_ok() {
                self.wakes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Wake-ups sent through the waker so far.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_waker(&self, w: mio::Waker) {
        let _ = self.waker.set(w);
    }

    /// The I/O thread is about to sleep; false if a command is already waiting (then it must
    /// not sleep).
    pub(crate) fn park(&self, commands_waiting: impl FnOnce() -> bool) -> bool {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if commands_waiting() {
            self.parked.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }
}

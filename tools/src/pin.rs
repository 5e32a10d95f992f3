//! CPU pinning that degrades to a clear warning instead of failing the run.

/// Pins the calling thread to `cpu`. On a machine without that CPU, or where the OS refuses,
/// prints one warning naming the thread and carries on unpinned. Returns whether it pinned.
pub fn pin_current_thread(role: &str, cpu: Option<usize>) -> bool {
    let Some(cpu) = cpu else {
        return false;
    };
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.iter().find(|c| c.id == cpu).copied() else {
        let have: Vec<String> = ids.iter().map(|c| c.id.to_string()).collect();
        tracing::warn!(
            target: "tickline::pin",
            "{role} thread not pinned: CPU {cpu} is not available here (CPUs: {}); running unpinned",
            if have.is_empty() { "unknown".to_string() } else { have.join(",") }
        );
        return false;
    };
    if core_affinity::set_for_current(id) {
        true
    } else {
        tracing::warn!(target: "tickline::pin", "{role} thread not pinned: the OS refused affinity to CPU {cpu}; running unpinned");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cpu_warns_and_continues() {
        assert!(!pin_current_thread("test", Some(100_000)));
        assert!(!pin_current_thread("test", None));
    }
}

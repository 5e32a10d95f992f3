//! The end-of-run summary: a human table, or one JSON object with `--json`.

use crate::runtime::RunReport;
use engine::latency::Stage;
use serde_json::{json, Map, Value};

fn money(units: i128) -> f64 {
    units as f64 / engine::fixed::SCALE as f64
}

impl RunReport {
    /// Frames per second over the pipeline's run.
    pub fn msgs_per_sec(&self) -> f64 {
        if self.elapsed_ns == 0 {
            return 0.0;
        }
        self.frames as f64 * 1e9 / self.elapsed_ns as f64
    }

    /// Realised, unrealised, fees and net PnL summed over symbols, quote units.
    pub fn pnl(&self) -> (f64, f64, f64, f64) {
        let (mut r, mut u, mut f) = (0i128, 0i128, 0i128);
        for (_, p) in &self.positions {
            r += p.realized;
            u += p.unrealized();
            f += p.fees;
        }
        (money(r), money(u), money(f), money(r + u - f))
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut lat = Map::new();
        for st in Stage::ALL {
            let p = self.latency.get(st).percentiles();
            lat.insert(
                st.name().into(),
                json!({"count": p.count, "p50": p.p50, "p90": p.p90, "p99": p.p99, "p999": p.p999, "max": p.max}),
            );
        }
        let (realized, unrealized, fees, net) = self.pnl();
        let positions: Map<String, Value> = self
            .positions
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    json!({
                        "qty": p.qty as f64 / engine::fixed::SCALE as f64,
                        "avg_price": p.avg_price.to_f64(),
                        "realized": money(p.realized),
                        "unrealized": money(p.unrealized()),
                        "fees": money(p.fees),
                        "fills": p.fills,
                    }),
                )
            })
            .collect();
        let c = &self.core;
        let io = self.io.map(|t| {
            json!({
                "frames": t.frames, "bytes": t.bytes, "connects": t.connects,
                "disconnects": t.disconnects, "reconnect_attempts": t.reconnect_attempts,
                "connect_failures": t.connect_failures, "idle_timeouts": t.idle_timeouts,
                "peer_closes": t.peer_closes, "peer_hangups": t.peer_hangups,
                "heartbeats_sent": t.heartbeats_sent, "pongs": t.pongs,
                "protocol_errors": t.protocol_errors, "tls_errors": t.tls_errors,
                "connect_errors": t.connect_errors, "io_errors": t.io_errors,
                "recorder_dropped": t.recorder_dropped,
            })
        });
        let session = self.session.map(|o| {
            json!({
                "placed": o.placed, "cancels": o.cancels,
                "refused_disconnected": o.refused_disconnected,
                "refused_journal": o.refused_journal, "cancels_not_sent": o.cancels_not_sent,
                "send_errors": o.send_errors, "acks": o.acks, "rejects": o.rejects,
                "cancel_rejects": o.cancel_rejects, "fills": o.fills, "canceled": o.canceled,
                "duplicates": o.duplicates, "unknown_outcomes": o.unknown_outcomes,
                "bad_frames": o.bad_frames, "unknown_orders": o.unknown_orders,
                "reconciled_orders": o.reconciled_orders, "reconciled_fills": o.reconciled_fills,
                "journal_errors": o.journal_errors, "logons": o.logons,
                "user_streams": o.user_streams, "user_stream_refused": o.user_stream_refused,
                "refused_no_user_stream": o.refused_no_user_stream,
                "settled_by_reply": o.settled_by_reply,
                "refused_id_check": o.refused_id_check, "id_floor_raises": o.id_floor_raises,
                "id_check_failures": o.id_check_failures,
            })
        });
        let mut v = json!({
            "io": io,
            "order_session": session,
            "messages": self.frames,
            "decode_errors": self.decode.decode_errors,
            "ignored": self.decode.ignored,
            "unknown_symbol": self.decode.unknown_symbol,
            "events": c.events,
            "trades": c.trades,
            "book_tickers": c.book_tickers,
            "depth_levels": c.depth_levels,
            "book_gaps": c.book_gaps,
            "book_crossed": c.book_crossed,
            "book_syncs": c.book_syncs,
            "snapshots_rejected": c.snapshots_rejected,
            "resync_requests": c.resync_requests,
            "checksums_verified": c.checksums_verified,
            "checksum_failures": c.checksum_failures,
            "feed_gaps": c.feed_gaps,
            "ring_full_waits": self.ring.full,
            "ring_dropped": self.ring.dropped,
            "orders_sent": c.orders_sent,
            "orders_denied": c.orders_denied,
            "fills": c.fills,
            "rejects": c.rejects,
            "canceled": c.canceled,
            "order_timeouts": c.order_timeouts,
            "duplicate_fills": c.duplicate_fills,
            "order_ring_full": c.order_ring_full,
            "slow_callbacks": c.slow_callbacks,
            "trader_restarts": c.trader_restarts,
            "symbol_halts": c.symbol_halts,
            "pnl": {"realized": realized, "unrealized": unrealized, "fees": fees, "net": net},
            "positions": positions,
            "elapsed_ns": self.elapsed_ns,
            "feed_elapsed_ns": self.feed_elapsed_ns,
            "msgs_per_sec": self.msgs_per_sec(),
            "allocations_during_run": self.allocations,
            "log_dropped": crate::logging::dropped(),
            "pinned": {"feed": self.pinned.0, "core": self.pinned.1},
            "latency_ns": lat,
            "latency_co_corrected": self.paced.is_some(),
        });
        if !self.venues.is_empty() {
            v["venues"] = self.venues_json();
        }
        self.add_threads_json(&mut v);
        v
    }

    /// `venues`: per venue, the top level's `messages`, `decode_errors`, `ignored`,
    /// `unknown_symbol` and `book_gaps`, plus `checksum_failures` and `book_syncs`
    /// (snapshots applied), from its decoder and its books.
    fn venues_json(&self) -> Value {
        let mut m = Map::new();
        for c in &self.venues {
            m.insert(
                c.venue.name().to_string(),
                json!({
                    "messages": c.messages,
                    "decode_errors": c.decode.decode_errors,
                    "ignored": c.decode.ignored,
                    "unknown_symbol": c.decode.unknown_symbol,
                    "events": c.decode.events,
                    "book_gaps": c.book.gaps,
                    "checksum_failures": c.book.checksum_failures,
                    "book_syncs": c.book.snapshots,
                    "book_crossed": c.book.crossed,
                }),
            );
        }
        Value::Object(m)
    }

    /// `machine_hiccups`, `threads`, `page_faults` and `memory_locked`.
    fn add_threads_json(&self, v: &mut Value) {
        let t = &self.threads;
        v["machine_hiccups"] = self.machine_hiccups.to_json();
        v["feed_hiccups"] = self
            .feed_hiccups
            .as_ref()
            .map_or(Value::Null, |h| h.to_json());
        v["threads"] = self.threads_json();
        v["page_faults"] =
            json!({"minor": t.process.minor_faults, "major": t.process.major_faults});
        v["memory_locked"] = json!(t
            .memory_lock
            .as_ref()
            .map(|m| matches!(m, crate::threads::MemoryLock::Locked)));
    }

    fn threads_json(&self) -> Value {
        self.threads
            .threads
            .iter()
            .map(|t| {
                json!({
                    "name": t.name, "tid": t.tid, "role": t.role, "cpus": t.cpus,
                    "voluntary_switches": t.usage.voluntary,
                    "involuntary_switches": t.usage.involuntary,
                    "minor_faults": t.usage.minor_faults,
                    "major_faults": t.usage.major_faults,
                    "running": t.running,
                })
            })
            .collect()
    }

    /// The threads table, the page faults and the machine's hiccups (text).
    fn threads_text(&self, s: &mut String) {
        use std::fmt::Write;
        let h = &self.machine_hiccups;
        if h.count > 0 {
            let _ = writeln!(
                s,
                "\nmachine hiccups on the core's CPU (gaps between the core's empty polls, ns): {}\n  time-weighted (the machine's delay at a random instant, to set beside queue_wait): {}",
                h.to_line(),
                h.delay_line()
            );
        } else {
            let _ = writeln!(
                s,
                "\nmachine hiccups: not measured (the core never polled empty twice in a row while spinning)"
            );
        }
        if let Some(h) = self.feed_hiccups.as_ref().filter(|h| h.count > 0) {
            let _ = writeln!(
                s,
                "machine hiccups on the feed's CPU (gaps between the paced feed's clock reads while it waits for a frame, ns): {}\n  time-weighted: {}",
                h.to_line(),
                h.delay_line()
            );
        }
        let t = &self.threads;
        if t.threads.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nthreads                   tid  cpus      switches vol/invol   faults minor/major"
        );
        for th in &t.threads {
            let cpus = if th.cpus.is_empty() {
                "?".to_string()
            } else {
                crate::pin::format_cpu_list(&th.cpus)
            };
            let _ = writeln!(
                s,
                "  {:<22}{:>7}  {:<8}{:>10}/{:<10}{:>8}/{}{}",
                th.name,
                th.tid,
                cpus,
                th.usage.voluntary,
                th.usage.involuntary,
                th.usage.minor_faults,
                th.usage.major_faults,
                if th.role == "other" {
                    "  (not spawned by the run; counts since it started)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            s,
            "page faults     {:>12}   minor, {} major, whole process during the run{}",
            t.process.minor_faults,
            t.process.major_faults,
            match &t.memory_lock {
                Some(crate::threads::MemoryLock::Locked) => "; memory locked (mlockall)",
                Some(crate::threads::MemoryLock::Refused(_)) => "; memory not locked",
                None => "",
            }
        );
    }

    /// The slow-callback line: the count beside the core's involuntary switches, and the
    /// threads that may run on the core's CPU and were switched during the run (what may have
    /// preempted a slow callback).
    fn slow_text(&self, s: &mut String) {
        use std::fmt::Write;
        let c = &self.core;
        let core = self.threads.core();
        if c.slow_callbacks == 0 && core.is_none() {
            return;
        }
        let invol = core.map_or("n/a".to_string(), |t| t.usage.involuntary.to_string());
        let sharing: Vec<String> = self
            .threads
            .sharing_core_cpu()
            .iter()
            .map(|t| {
                format!(
                    "{} ({} switches)",
                    t.name,
                    t.usage.voluntary + t.usage.involuntary
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "slow callbacks  {:>12}   (core thread: {invol} involuntary context switches in the run; other threads allowed on the core's CPU that ran: {})",
            c.slow_callbacks,
            if sharing.is_empty() { "none".to_string() } else { sharing.join(", ") }
        );
    }

    /// The summary as a human-readable table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let c = &self.core;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "messages        {:>12}   ({:.0} msgs/s over {:.3} ms)",
            self.frames,
            self.msgs_per_sec(),
            self.elapsed_ns as f64 / 1e6
        );
        let _ = writeln!(s, "decode errors   {:>12}", self.decode.decode_errors);
        let _ = writeln!(
            s,
            "ignored         {:>12}   (unknown symbol {})",
            self.decode.ignored, self.decode.unknown_symbol
        );
        let _ = writeln!(
            s,
            "events          {:>12}   (trades {}, bookTicker {}, depth levels {})",
            c.events, c.trades, c.book_tickers, c.depth_levels
        );
        let _ = writeln!(s, "book gaps       {:>12}   (crossed {}, rejected snapshots {}, syncs {}, resync requests {})", c.book_gaps, c.book_crossed, c.snapshots_rejected, c.book_syncs, c.resync_requests);
        let _ = writeln!(
            s,
            "ring            {:>12}   full waits, {} dropped, {} feed gaps",
            self.ring.full, self.ring.dropped, c.feed_gaps
        );
        let _ = writeln!(
            s,
            "orders sent     {:>12}   (denied by risk {}, fills {}, rejects {}, canceled {})",
            c.orders_sent, c.orders_denied, c.fills, c.rejects, c.canceled
        );
        if c.trader_restarts + c.symbol_halts > 0 {
            let _ = writeln!(
                s,
                "supervision     {:>12}   trader restarts, {} symbols halted",
                c.trader_restarts, c.symbol_halts
            );
        }
        let (r, u, f, n) = self.pnl();
        let _ = writeln!(
            s,
            "pnl             {n:>12.4}   (realized {r:.4}, unrealized {u:.4}, fees {f:.4})"
        );
        for (name, p) in &self.positions {
            let _ = writeln!(
                s,
                "  {name:<14}position {:.8} @ {}",
                p.qty as f64 / engine::fixed::SCALE as f64,
                p.avg_price
            );
        }
        match self.allocations {
            Some(n) => {
                let _ = writeln!(s, "allocations     {n:>12}   during the run");
            }
            None => {
                let _ = writeln!(
                    s,
                    "allocations              n/a   (not measured in live runs)"
                );
            }
        }
        let _ = writeln!(
            s,
            "log dropped     {:>12}   lines (the log writer fell behind)",
            crate::logging::dropped()
        );
        let _ = writeln!(
            s,
            "pinned          feed {} core {}",
            self.pinned.0, self.pinned.1
        );
        self.slow_text(&mut s);
        if let Some(f) = self.paced {
            let _ = writeln!(s, "\npaced x{f}: latencies are measured from each frame's intended send time (coordinated-omission corrected)");
        }
        let _ = writeln!(
            s,
            "\nlatency (ns)        count       p50       p90       p99     p99.9       max"
        );
        for st in Stage::ALL {
            let p = self.latency.get(st).percentiles();
            let _ = writeln!(
                s,
                "  {:<14}{:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                st.name(),
                p.count,
                p.p50,
                p.p90,
                p.p99,
                p.p999,
                p.max
            );
        }
        if let Some(t) = &self.io {
            let _ = writeln!(
                s,
                "connections     {:>12}   connects, {} disconnects, {} reconnect attempts, {} idle timeouts, errors: {} protocol, {} TLS, {} connect, {} I/O",
                t.connects, t.disconnects, t.reconnect_attempts, t.idle_timeouts,
                t.protocol_errors, t.tls_errors, t.connect_errors, t.io_errors
            );
        }
        if let Some(o) = &self.session {
            let _ = writeln!(
                s,
                "order session   {:>12}   placed, {} cancels, {} acks, {} fills, {} canceled, {} rejects; refused: {} disconnected, {} journal, {} no user stream, {} id check; reconciled {} orders, {} fills; {} settled by reply; {} send errors, {} duplicates dropped, {} logons; user stream: {} subscribed, {} refused; venue id check moved numbering {} times, failed {}",
                o.placed, o.cancels, o.acks, o.fills, o.canceled, o.rejects,
                o.refused_disconnected, o.refused_journal, o.refused_no_user_stream,
                o.refused_id_check, o.reconciled_orders, o.reconciled_fills, o.settled_by_reply,
                o.send_errors, o.duplicates, o.logons, o.user_streams, o.user_stream_refused,
                o.id_floor_raises, o.id_check_failures
            );
            if o.user_stream_refused > 0 {
                let _ = writeln!(
                    s,
                    "ERROR: the venue refused the user data stream {} time(s): executionReports did not come (see the notices for its code and message)",
                    o.user_stream_refused
                );
            }
        }
        self.threads_text(&mut s);
        for (i, e) in &self.first_errors {
            let _ = writeln!(s, "decode error at frame {i}: {e}");
        }
        s
    }
}

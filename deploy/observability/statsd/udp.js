// The reference StatsD daemon's config for Tickline's observability stack (etsy/statsd).
// Graphite backend with the legacy namespace, which is what the Tickline dashboard queries:
//   counters -> stats_counts.<name> (per flush) and stats.<name> (per second)
//   gauges   -> stats.gauges.<name>
{
  port: 8125,
  address: "0.0.0.0",
  mgmt_port: 8126,
  mgmt_address: "0.0.0.0",
  flushInterval: 10000,
  backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1",
  graphitePort: 2003,
  graphite: { legacyNamespace: true },
  deleteIdleStats: false
}

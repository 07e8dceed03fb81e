//! The security part of a snapshot (`/status` `security`) and its metrics.

use serde::Serialize;

use super::engine::{Alert, BlockDecision};
use super::kernel::RuleHits;
use super::{kind_name, KINDS};
use crate::abi::detect as k;
use crate::prom::{header as family, sample};

/// `/status` alerts listed at most (active first, then most recent).
pub const MAX_ALERTS_SHOWN: usize = 100;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SecuritySnapshot {
    pub detection: bool,
    /// `off`, `dry-run` or `on`.
    pub mitigate: &'static str,
    pub alerts_active: Vec<Alert>,
    /// Inactive alerts, most recent first (bounded).
    pub alerts_recent: Vec<Alert>,
    /// Sources blocked after an alert (dry-run: would be blocked).
    pub blocked_sources: Vec<BlockDecision>,
    /// Per-rule counters of the blocklist and allowlist (first 1000 rules).
    pub rules: Vec<RuleHits>,
    /// `--home-networks` as resolved now (auto: from the interfaces).
    pub home_networks: Vec<String>,
    pub counters: SecurityCounters,
    #[serde(skip)]
    pub raised: [u64; k::KIND_MAX],
    #[serde(skip)]
    pub active: [u64; k::KIND_MAX],
    /// Records about home hosts' own behaviour not raised, per kind.
    #[serde(skip)]
    pub outbound: [u64; k::KIND_MAX],
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SecurityCounters {
    /// Alert records the probes wrote, and could not write (ring buffer full).
    pub events_sent: u64,
    pub events_lost: u64,
    /// Alert records the agent received.
    pub events_received: u64,
    pub dropped_blocklist: u64,
    pub dropped_detected: u64,
    pub would_drop_blocklist: u64,
    pub would_drop_detected: u64,
    pub allowlist_passed: u64,
    /// Blocked sources' packets passed: they answer a conversation this
    /// side started.
    pub answers_passed: u64,
    /// Attempts or failures not counted: the source's scan slot was held
    /// by another source with failures.
    pub scan_untracked: u64,
}

impl SecuritySnapshot {
    /// Splits `alerts` (active first) into the two bounded lists.
    pub fn set_alerts(&mut self, alerts: Vec<Alert>) {
        let (active, recent): (Vec<Alert>, Vec<Alert>) = alerts.into_iter().partition(|a| a.active);
        self.alerts_active = active.into_iter().take(MAX_ALERTS_SHOWN).collect();
        self.alerts_recent = recent.into_iter().take(MAX_ALERTS_SHOWN).collect();
    }
}

/// Appends the security metrics. Labels: kind, rule, action; no addresses.
pub fn render_metrics(out: &mut String, s: &SecuritySnapshot) {
    family(
        out,
        "netprobe_alerts_total",
        "counter",
        "Alerts raised, by kind (one per source and target, not per packet).",
    );
    for kd in KINDS {
        sample(
            out,
            "netprobe_alerts_total",
            &[("kind", kind_name(kd))],
            s.raised[kd as usize],
        );
    }
    family(
        out,
        "netprobe_alerts_active",
        "gauge",
        "Alerts active now, by kind.",
    );
    for kd in KINDS {
        sample(
            out,
            "netprobe_alerts_active",
            &[("kind", kind_name(kd))],
            s.active[kd as usize],
        );
    }
    let c = &s.counters;
    family(
        out,
        "netprobe_alerts_outbound_suppressed_total",
        "counter",
        "Threshold crossings by home hosts' own traffic (scans from a home address, floods toward outside) not raised as alerts; --alert-outbound raises them.",
    );
    for kd in KINDS {
        sample(
            out,
            "netprobe_alerts_outbound_suppressed_total",
            &[("kind", kind_name(kd))],
            s.outbound[kd as usize],
        );
    }
    family(
        out,
        "netprobe_alert_events_total",
        "counter",
        "Alert records the probes wrote to the ring buffer.",
    );
    sample(out, "netprobe_alert_events_total", &[], c.events_sent);
    family(
        out,
        "netprobe_alert_events_lost_total",
        "counter",
        "Alert records lost because the ring buffer was full.",
    );
    sample(out, "netprobe_alert_events_lost_total", &[], c.events_lost);
    family(out, "netprobe_mitigation_packets_total", "counter",
        "Packets matched by mitigation: action dropped (--mitigate=on) or would_drop (dry-run), by rule blocklist or detected.");
    for (rule, action, v) in [
        ("blocklist", "dropped", c.dropped_blocklist),
        ("detected", "dropped", c.dropped_detected),
        ("blocklist", "would_drop", c.would_drop_blocklist),
        ("detected", "would_drop", c.would_drop_detected),
    ] {
        sample(
            out,
            "netprobe_mitigation_packets_total",
            &[("rule", rule), ("action", action)],
            v,
        );
    }
    family(
        out,
        "netprobe_allowlist_passed_total",
        "counter",
        "Packets matched by a block but passed: allowlisted.",
    );
    sample(
        out,
        "netprobe_allowlist_passed_total",
        &[],
        c.allowlist_passed,
    );
    family(
        out,
        "netprobe_mitigation_answers_passed_total",
        "counter",
        "Packets of blocked sources passed because they answer a conversation this side started.",
    );
    sample(
        out,
        "netprobe_mitigation_answers_passed_total",
        &[],
        c.answers_passed,
    );
    family(
        out,
        "netprobe_scan_untracked_total",
        "counter",
        "Connection attempts or failures the scan detectors could not count: the source's slot was held by another source with failures (raise --scan-slots).",
    );
    sample(out, "netprobe_scan_untracked_total", &[], c.scan_untracked);
    family(
        out,
        "netprobe_blocked_sources",
        "gauge",
        "Sources blocked now after an alert (dry-run: would be).",
    );
    sample(
        out,
        "netprobe_blocked_sources",
        &[],
        s.blocked_sources.len(),
    );
}

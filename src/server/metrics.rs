//! Prometheus metrics at `GET /metrics` (SPEC 8).
//!
//! The text exposition format is a few lines per metric, so it is written
//! here by hand rather than through a metrics crate and its registry: the
//! server has four metrics and one histogram, all known up front.
//!
//! - `convostat_events`, `convostat_conversations`: gauges read from
//!   [`Engine::stats`](crate::Engine::stats) at scrape time;
//! - `convostat_http_requests_total{route,code}`: a counter per matched
//!   route template (`/v1/bots/{bot_id}/conversations`, not the raw path,
//!   so that the number of series stays bounded) and status code;
//! - `convostat_http_request_duration_seconds{route}`: a histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::engine::EngineStats;

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(String, u16), u64>,
    durations: BTreeMap<String, Histogram>,
}

/// Request counters and durations since the server started.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: &str, code: u16, seconds: f64) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests.entry((route.to_owned(), code)).or_default() += 1;
        let h = c.durations.entry(route.to_owned()).or_default();
        h.count += 1;
        h.sum += seconds;
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            h.counts[i] += 1;
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self, stats: &EngineStats) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP convostat_events Distinct events held by the engine.\n\
             # TYPE convostat_events gauge\n\
             convostat_events {}\n\
             # HELP convostat_conversations Distinct conversations held by the engine.\n\
             # TYPE convostat_conversations gauge\n\
             convostat_conversations {}",
            stats.events, stats.conversations
        );
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP convostat_http_requests_total HTTP requests answered, by route template and status code.\n\
             # TYPE convostat_http_requests_total counter\n",
        );
        for ((route, code), n) in &c.requests {
            let _ = writeln!(
                out,
                "convostat_http_requests_total{{route=\"{}\",code=\"{code}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP convostat_http_request_duration_seconds Time from request to response head.\n\
             # TYPE convostat_http_request_duration_seconds histogram\n",
        );
        for (route, h) in &c.durations {
            let route = escape(route);
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "convostat_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "convostat_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 convostat_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 convostat_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("/healthz", 200, 0.0001);
        m.observe("/healthz", 200, 0.2);
        m.observe(UNMATCHED, 404, 0.001);
        let text = m.render(&EngineStats {
            conversations: 3,
            events: 7,
            heap_bytes: 0,
        });
        assert!(text.contains("convostat_events 7\n"));
        assert!(text.contains("convostat_conversations 3\n"));
        assert!(text.contains("convostat_http_requests_total{route=\"/healthz\",code=\"200\"} 2\n"));
        assert!(
            text.contains("convostat_http_requests_total{route=\"unmatched\",code=\"404\"} 1\n")
        );
        assert!(text.contains(
            "convostat_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "convostat_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.25\"} 2\n"
        ));
        assert!(
            text.contains("convostat_http_request_duration_seconds_count{route=\"/healthz\"} 2\n")
        );
    }
}

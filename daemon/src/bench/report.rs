//! The benchmark's results: one [`PointReport`] per offered rate, printed as a table, written
//! as JSON, and for a sweep drawn as an SVG plot of latency against throughput.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::system::Machine;

/// Submit-to-delivery latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of `histogram` (microseconds); `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Some(Latency {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        })
    }
}

/// One node's figures during a point.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Its moniker.
    pub moniker: String,
    /// Its process id, when the benchmark can see the process.
    pub pid: Option<u32>,
    /// CPU used over the point, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Peak resident memory of the process so far, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Resident memory at the end of the point, MiB.
    pub rss_mib: Option<f64>,
    /// Events that reached consensus per second, on this node.
    pub events_per_sec: f64,
    /// Rounds decided per second, on this node.
    pub rounds_per_sec: f64,
    /// Transactions submitted to it that it accepted.
    pub accepted: u64,
    /// Transactions submitted to it that it refused (or did not answer).
    pub refused: u64,
    /// The node's answer to the first transaction it refused, if any: why it refused.
    pub first_refusal: Option<String>,
    /// Accepted transactions of it delivered to its app.
    pub delivered: u64,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Nodes driven.
    pub nodes: usize,
    /// Offered load of this point, tx/s over all nodes.
    pub rate: u64,
    /// Seconds of load.
    pub duration_s: u64,
    /// Bytes per transaction.
    pub tx_size: usize,
    /// Proxy connections per node.
    pub connections: usize,
    /// The `testnet.json` of already-running nodes, if not a local network.
    pub external: Option<String>,
}

/// The figures of one offered rate. The JSON field names are the documented format.
#[derive(Debug, Clone, Serialize)]
pub struct PointReport {
    /// Delivered transactions per second, from the first one due to the last delivery.
    pub committed_tps: f64,
    /// Latency of the delivered transactions; `None` if none was delivered.
    pub latency_ms: Option<Latency>,
    /// Events that reached consensus per second (mean over the nodes).
    pub events_per_sec: f64,
    /// Rounds decided per second (mean over the nodes).
    pub rounds_per_sec: f64,
    /// Transactions offered.
    pub offered: u64,
    /// Accepted by the proxies.
    pub accepted: u64,
    /// Refused by the proxies (backpressure) or never answered.
    pub refused: u64,
    /// Accepted but not delivered by the end of the drain.
    pub lost: u64,
    /// Deliveries of a transaction already delivered.
    pub duplicates: u64,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// The settings.
    pub config: RunConfig,
    /// The git commit of the benchmark's binary.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
}

/// The table's header.
pub fn table_header() -> String {
    "| offered tx/s | committed tx/s | p50 ms | p90 ms | p99 ms | max ms | events/s | rounds/s \
     | refused | lost | CPU % per node | peak RSS MiB per node |\n\
     |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
        .to_string()
}

/// One row of the table.
pub fn table_row(p: &PointReport) -> String {
    let latency = p.latency_ms.map_or_else(
        || "- | - | - | -".to_string(),
        |l| format!("{:.1} | {:.1} | {:.1} | {:.1}", l.p50, l.p90, l.p99, l.max),
    );
    let per_node = |f: fn(&NodeReport) -> Option<f64>| {
        p.nodes
            .iter()
            .map(|n| f(n).map_or_else(|| "-".to_string(), |v| format!("{v:.0}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "| {} | {:.0} | {latency} | {:.0} | {:.1} | {} | {} | {} | {} |",
        p.config.rate,
        p.committed_tps,
        p.events_per_sec,
        p.rounds_per_sec,
        p.refused,
        p.lost,
        per_node(|n| n.cpu_percent),
        per_node(|n| n.peak_rss_mib),
    )
}

/// A line of the plot: its name, its colour and its (x, y) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// An SVG plot of p50 and p99 latency (ms) against committed throughput (tx/s), one point
/// per offered rate.
pub fn svg_plot(points: &[PointReport]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 60.0;
    let series: Vec<Series<'_>> = [
        (
            "p50",
            "#1f77b4",
            (|l: &Latency| l.p50) as fn(&Latency) -> f64,
        ),
        ("p99", "#d62728", |l: &Latency| l.p99),
    ]
    .into_iter()
    .map(|(name, colour, pick)| {
        let xy = points
            .iter()
            .filter_map(|p| p.latency_ms.map(|l| (p.committed_tps, pick(&l))))
            .collect();
        (name, colour, xy)
    })
    .collect();
    let all = series.iter().flat_map(|s| s.2.iter());
    let x_max = nice_ceiling(all.clone().map(|p| p.0).fold(0.0, f64::max));
    let y_max = nice_ceiling(all.map(|p| p.1).fold(0.0, f64::max));
    let x_of = |x: f64| LEFT + x / x_max * (W - LEFT - RIGHT);
    let y_of = |y: f64| H - BOTTOM - y / y_max * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">hearsay bench: \
         latency against committed throughput</text>\n",
        W / 2.0
    );
    for i in 0..=5 {
        let (x, y) = (x_max * f64::from(i) / 5.0, y_max * f64::from(i) / 5.0);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            W - RIGHT,
            LEFT - 6.0,
            y_of(y) + 4.0,
            format_tick(y),
            H - BOTTOM + 18.0,
            format_tick(x),
            yy = y_of(y),
            xx = x_of(x),
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">committed tx/s</text>\n\
         <text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">\
         latency, ms</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        H - 20.0,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        b = H - BOTTOM,
        r = W - RIGHT,
    );
    for (k, (name, colour, xy)) in series.iter().enumerate() {
        let path: Vec<String> = xy
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(x, y) in xy {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"/>",
                x_of(x),
                y_of(y)
            );
        }
        let ly = TOP + 8.0 + 18.0 * k as f64;
        let _ = write!(
            svg,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{colour}\" \
             stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
            LEFT + 40.0,
            LEFT + 46.0,
            ly + 4.0,
            lx = LEFT + 16.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest 1, 2 or 5 times a power of ten at least `v` (1 for nothing to show).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn format_tick(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(rate: u64, committed_tps: f64, p50: f64, p99: f64) -> PointReport {
        PointReport {
            committed_tps,
            latency_ms: Some(Latency {
                p50,
                p90: p99,
                p99,
                max: p99,
            }),
            events_per_sec: 10.0,
            rounds_per_sec: 1.0,
            offered: 10,
            accepted: 10,
            refused: 0,
            lost: 0,
            duplicates: 0,
            nodes: Vec::new(),
            config: RunConfig {
                nodes: 4,
                rate,
                duration_s: 1,
                tx_size: 200,
                connections: 1,
                external: None,
            },
            commit: "abc".into(),
            machine: Machine::describe(),
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        assert_eq!(Latency::of(&h), None);
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap(); // 1 ms .. 1000 ms
        }
        let l = Latency::of(&h).unwrap();
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p90 - 900.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let json = serde_json::to_value(point(1000, 998.0, 12.0, 40.0)).unwrap();
        for key in [
            "committed_tps",
            "latency_ms",
            "events_per_sec",
            "nodes",
            "config",
            "commit",
            "machine",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        for key in ["p50", "p90", "p99", "max"] {
            assert!(json["latency_ms"][key].is_number(), "{key} in {json}");
        }
    }

    #[test]
    fn the_plot_places_each_point_inside_its_axes() {
        let points = [
            point(1000, 1000.0, 10.0, 30.0),
            point(4000, 3900.0, 50.0, 180.0),
        ];
        let svg = svg_plot(&points);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Axes run to 5000 tx/s and 200 ms: the highest point sits below the top, the
        // rightmost left of the right edge.
        assert!(svg.contains(">5000<") && svg.contains(">200<"), "{svg}");
        for circle in svg.split("<circle").skip(1) {
            let attr = |name: &str| -> f64 {
                let start = circle.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                circle[start..].split('"').next().unwrap().parse().unwrap()
            };
            assert!((70.0..=700.0).contains(&attr("cx")), "{circle}");
            assert!((40.0..=380.0).contains(&attr("cy")), "{circle}");
        }
    }

    #[test]
    fn nice_ceilings_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(18.0), 20.0);
        assert_eq!(nice_ceiling(51_000.0), 100_000.0);
        assert_eq!(nice_ceiling(200.0), 200.0);
    }
}

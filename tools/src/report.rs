//! Results of a benchmark: per-run values of each metric, their median, the table printed on
//! stdout and the JSON written with `--json`.
//!
//! The JSON is written by hand (the shape is small and fixed) so the tools need no serde:
//!
//! ```json
//! {"tool": "wharf-bench", "server": "vsftpd", "address": "127.0.0.1:2121", "runs": 3,
//!  "workloads": [{"name": "retr", "error": null, "notes": [],
//!                 "metrics": {"mb_per_s": {"unit": "MB/s", "median": 9876.5, "runs": [..]}}}]}
//! ```

use std::fmt::Write;

/// One measured quantity of a workload, one value per run.
#[derive(Clone, Debug)]
pub struct Metric {
    /// Key in the JSON, e.g. `mb_per_s`.
    pub name: &'static str,
    /// Unit shown in the table, e.g. `MB/s`.
    pub unit: &'static str,
    /// One value per successful run.
    pub runs: Vec<f64>,
}

impl Metric {
    /// The median of the runs (the mean of the middle two for an even count), NaN if none.
    pub fn median(&self) -> f64 {
        median(&self.runs)
    }
}

/// The median of `values`; NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0..=100) of already sorted values, nearest-rank method; NaN if empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What one workload measured.
#[derive(Clone, Debug, Default)]
pub struct WorkloadResult {
    /// Workload name (`retr`, `login_storm`, ...).
    pub name: String,
    /// Metrics in display order.
    pub metrics: Vec<Metric>,
    /// Set when a run failed; the runs before it are kept.
    pub error: Option<String>,
    /// Remarks for the reader (e.g. failure reasons seen during a storm).
    pub notes: Vec<String>,
}

impl WorkloadResult {
    /// Adds the values of one run, keeping the order metrics first appeared in.
    pub fn add_run(&mut self, values: &[(&'static str, &'static str, f64)]) {
        for &(name, unit, v) in values {
            match self.metrics.iter_mut().find(|m| m.name == name) {
                Some(m) => m.runs.push(v),
                None => self.metrics.push(Metric {
                    name,
                    unit,
                    runs: vec![v],
                }),
            }
        }
    }

    /// The metric named `name`, if measured.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Formats a value with a precision that suits its size.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if (v == v.trunc() && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The table printed on stdout: one row per metric, its median and every run.
pub fn table(server: &str, address: &str, results: &[WorkloadResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "wharf-bench: {server} at {address}");
    let _ = writeln!(
        out,
        "{:<14} {:<24} {:>12}  {:<10} runs",
        "workload", "metric", "median", "unit"
    );
    for r in results {
        if r.metrics.is_empty() && r.error.is_none() {
            continue;
        }
        for m in &r.metrics {
            let runs: Vec<String> = m.runs.iter().map(|v| fmt_value(*v)).collect();
            let _ = writeln!(
                out,
                "{:<14} {:<24} {:>12}  {:<10} {}",
                r.name,
                m.name,
                fmt_value(m.median()),
                m.unit,
                runs.join(" ")
            );
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{:<14} ERROR: {e}", r.name);
        }
        for n in &r.notes {
            let _ = writeln!(out, "{:<14} note: {n}", r.name);
        }
    }
    out
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_num(v: f64, out: &mut String) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

/// The JSON document written with `--json`.
pub fn json(server: &str, address: &str, runs: usize, results: &[WorkloadResult]) -> String {
    let mut o = String::new();
    o.push_str("{\"tool\": \"wharf-bench\", \"server\": ");
    json_str(server, &mut o);
    o.push_str(", \"address\": ");
    json_str(address, &mut o);
    let _ = write!(o, ", \"runs\": {runs}, \"workloads\": [");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        o.push_str("\n  {\"name\": ");
        json_str(&r.name, &mut o);
        o.push_str(", \"error\": ");
        match &r.error {
            Some(e) => json_str(e, &mut o),
            None => o.push_str("null"),
        }
        o.push_str(", \"notes\": [");
        for (j, n) in r.notes.iter().enumerate() {
            if j > 0 {
                o.push_str(", ");
            }
            json_str(n, &mut o);
        }
        o.push_str("], \"metrics\": {");
        for (j, m) in r.metrics.iter().enumerate() {
            if j > 0 {
                o.push_str(", ");
            }
            json_str(m.name, &mut o);
            o.push_str(": {\"unit\": ");
            json_str(m.unit, &mut o);
            o.push_str(", \"median\": ");
            json_num(m.median(), &mut o);
            o.push_str(", \"runs\": [");
            for (k, v) in m.runs.iter().enumerate() {
                if k > 0 {
                    o.push_str(", ");
                }
                json_num(*v, &mut o);
            }
            o.push_str("]}");
        }
        o.push_str("}}");
    }
    o.push_str("\n]}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn json_escapes_and_keeps_runs() {
        let mut r = WorkloadResult {
            name: "retr".into(),
            ..Default::default()
        };
        r.add_run(&[("mb_per_s", "MB/s", 10.0)]);
        r.add_run(&[("mb_per_s", "MB/s", 30.0)]);
        r.add_run(&[("mb_per_s", "MB/s", 20.0)]);
        r.error = Some("bad \"reply\"\n".into());
        let j = json("x", "127.0.0.1:21", 3, &[r]);
        assert!(j.contains("\"median\": 20, \"runs\": [10, 30, 20]"), "{j}");
        assert!(j.contains("bad \\\"reply\\\"\\n"), "{j}");
    }
}

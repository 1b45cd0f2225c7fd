//! Helpers shared by the wrk benchmarks (`#[path = "util/mod.rs"] mod util;`): load generation
//! and the median of rounds. Each bench compiles this module and uses what it needs.

use std::process::Command;

/// `wrk` settings: one thread (the machine has 2 cores), 32 connections.
pub const WRK_ARGS: [&str; 2] = ["-t1", "-c32"];

/// Runs wrk against `url` with `header` for `duration` and returns its requests per second.
/// Panics when wrk fails or saw socket errors or non-2xx answers: a fast wrong answer is no
/// measurement.
pub fn wrk(url: &str, header: &str, duration: &str) -> f64 {
    let output = Command::new("wrk")
        .args(WRK_ARGS)
        .args(["-d", duration, "-H", header])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("run wrk: {e}; install it with `apt-get install -y wrk`"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk {url} failed: {}\n{text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
        assert!(!text.contains(bad), "wrk {url}: {bad}\n{text}");
    }
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no `Requests/sec:` in wrk's output:\n{text}"))
}

/// The median (sorts `values`).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

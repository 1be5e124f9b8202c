//! What the benchmark reads about the nodes and the machine: CPU time and memory from
//! `/proc`, consensus counters from a node's `/stats`, and a description of the machine.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times. Linux reports them in USER_HZ,
/// which is 100 on every architecture it supports.
const USER_HZ: f64 = 100.0;
/// Largest `/stats` answer read.
const MAX_STATS_BYTES: u64 = 1 << 20;

/// CPU seconds (user and system, all threads) that process `pid` has used; `None` if it is
/// gone or `/proc` is not Linux's.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

/// The CPU seconds in a `/proc/<pid>/stat` line.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 3 (state) to 13 come first; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident memory of process `pid`: (now, peak), in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmRSS:")?,
        status_kib(&status, "VmHWM:")?,
    ))
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// The consensus counters of a node's `/stats` that the benchmark turns into rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events that reached consensus.
    pub consensus_events: u64,
    /// The last round decided (0 if none).
    pub last_consensus_round: u64,
}

/// Reads the counters from the node's HTTP service at `service`.
pub async fn counters(service: SocketAddr) -> anyhow::Result<Counters> {
    let stats = stats(service).await?;
    let number = |key: &str| -> anyhow::Result<u64> {
        let text = stats
            .get(key)
            .and_then(serde_json::Value::as_str)
            .with_context(|| format!("/stats of {service} has no {key}"))?;
        // Babble writes -1 for "none yet".
        Ok(text
            .parse::<i64>()
            .with_context(|| format!("/stats {key}={text:?}"))?
            .max(0) as u64)
    };
    Ok(Counters {
        consensus_events: number("consensus_events")?,
        last_consensus_round: number("last_consensus_round")?,
    })
}

/// A node's `/stats`, as JSON.
pub async fn stats(service: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let body = http_get(service, "/stats").await?;
    serde_json::from_slice(&body).with_context(|| format!("/stats of {service} is not JSON"))
}

/// The body of `GET path` on `addr`, read to the end (at most [`MAX_STATS_BYTES`]), within
/// five seconds.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream
            .take(MAX_STATS_BYTES)
            .read_to_end(&mut response)
            .await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .with_context(|| format!("GET {path} on {addr} timed out"))?
        .with_context(|| format!("GET {path} on {addr} failed"))?;
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("GET {path} on {addr}: not an HTTP answer");
    };
    if !response.starts_with(b"HTTP/1.1 200") {
        let status = String::from_utf8_lossy(&response[..split.min(40)]).into_owned();
        bail!("GET {path} on {addr}: {status}");
    }
    Ok(response[split + 4..].to_vec())
}

/// The machine the benchmark ran on, for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Total memory, MiB.
    pub memory_mib: Option<u64>,
    /// Operating system and kernel release.
    pub os: String,
}

impl Machine {
    /// Describes this machine.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_mib: status_kib(&meminfo, "MemTotal:").map(|kib| kib / 1024),
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        // Fields as Linux prints them: pid (comm) state ppid pgrp session tty tpgid flags
        // minflt cminflt majflt cmajflt utime stime ...
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("4242 (short) S 1"), None);
        assert_eq!(parse_cpu_seconds("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        let (rss, peak) = rss_kib(me).expect("this process's status");
        assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
        assert_eq!(rss_kib(u32::MAX), None);
    }

    #[test]
    fn status_fields_are_found_by_name() {
        let status = "Name:\thearsay\nVmHWM:\t  81234 kB\nVmRSS:\t  70000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(81234));
        assert_eq!(status_kib(status, "VmRSS:"), Some(70000));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }
}

//! CPU time read from Linux's /proc, for the benchmarks' figures: this process's, some of its
//! threads', or a RabbitMQ broker's on this host (it shares the cores with the hub, so its cost
//! per message is part of the figure). `None` where /proc does not tell (not Linux, or no
//! local broker).

/// User + system CPU seconds from a `/proc/.../stat` file.
pub fn stat_cpu_seconds(path: &std::path::Path) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) closed by ')': utime and stime
    // are the 12th and 13th (0 = the state), in clock ticks of 1/100 s on Linux.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The CPU seconds of the entries of a /proc directory (processes, or one process's threads)
/// whose command name is `name`, added up; `None` when there is none.
pub fn named_cpu_seconds(dir: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let named = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == name);
        if named && let Some(secs) = stat_cpu_seconds(&path.join("stat")) {
            *total.get_or_insert(0.0) += secs;
        }
    }
    total
}

/// The local RabbitMQ broker's CPU seconds so far (its Erlang VM, `beam.smp`).
pub fn broker_cpu_seconds() -> Option<f64> {
    named_cpu_seconds("/proc", "beam.smp")
}

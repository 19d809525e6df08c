//! The CPU time a RabbitMQ broker on this host has used so far (its Erlang VM, `beam.smp`),
//! read from /proc: the broker shares the cores with the hub in these benchmarks, so its cost
//! per message is part of the figure. `None` when no local broker is found (not Linux, or the
//! broker runs elsewhere).

pub fn broker_cpu_seconds() -> Option<f64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_beam = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "beam.smp");
        if !is_beam {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the command name (which may hold spaces) closed by ')': utime and stime
        // are the 12th and 13th (0 = the state), in clock ticks of 1/100 s on Linux.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        return Some((ticks(11)? + ticks(12)?) / 100.0);
    }
    None
}

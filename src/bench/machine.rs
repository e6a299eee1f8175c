//! The machine a run was measured on, as the report states it: CPU model, CPUs, kernel,
//! memory. Read from `/proc`; a field that cannot be read is "unknown", never an error.

use serde::Serialize;

use super::target::kib_field;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus_online: usize,
    /// CPUs this process may run on (its affinity), before any `--client-cpus` pinning.
    pub cpus_available: usize,
    pub kernel: String,
    pub memory_bytes: Option<u64>,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            cpus_online: super::options::online_cpus(),
            cpus_available: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            memory_bytes: kib_field(&meminfo, "MemTotal:").map(|k| k * 1024),
        }
    }

    /// One line for the report: `Intel Xeon ..., 2 CPUs, Linux 6.1.0, 24.0 GiB`.
    pub fn describe(&self) -> String {
        let mem = self.memory_bytes.map_or("unknown memory".to_string(), |b| {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        });
        format!(
            "{}, {} CPUs online, Linux {}, {mem}",
            self.cpu_model, self.cpus_online, self.kernel
        )
    }
}

/// The first `model name` of `/proc/cpuinfo` (x86), or `Model`/`CPU part` on other
/// architectures.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    for key in ["model name", "Model", "cpu model", "CPU part"] {
        let found = cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        });
        if let Some(v) = found.filter(|v| !v.is_empty()) {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_model() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            cpu_model(text).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(cpu_model("nothing"), None);
        let m = Machine::read();
        assert!(m.cpus_online >= 1);
        assert!(m.describe().contains("CPUs online"));
    }
}

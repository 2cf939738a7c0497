//! This server's load figures, read from Redis through the module API on
//! the main thread (every `zksync.load-interval`) or the role thread.

use redis_module::{Context, ContextFlags};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zksync_core::group::load::{Cpu, CpuMeter, CpuTime, Figures, Role, Sample};

/// The main thread's CPU use, measured at each of its samples (serverCron,
/// which Redis calls without a pointer of ours).
static CPU: Mutex<CpuMeter> = Mutex::new(CpuMeter::new());

/// Samples this server on the main thread, measuring its CPU use over the
/// last window of about `interval`. INFO's `*_main_thread` figures are the
/// calling thread's (`getrusage(RUSAGE_THREAD)`), so this is the one place
/// they are read.
pub fn on_main_thread(ctx: &Context, interval: Duration) -> Sample {
    let info = ctx.server_info("cpu");
    let text = |name: &str| info.field(name).map(|v| v.to_string_lossy());
    let used = CpuTime::parse(
        text("used_cpu_user_main_thread").as_deref(),
        text("used_cpu_sys_main_thread").as_deref(),
    );
    let mut meter = CPU.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = match used {
        Some(used) => meter.observe(used, Instant::now(), interval),
        None => None,
    };
    drop(meter);
    sample(ctx, cpu)
}

/// Samples this server off the main thread (the role thread, under the
/// Redis lock), with the main thread's last CPU figure.
pub fn off_main_thread(ctx: &Context) -> Sample {
    let cpu = CPU.lock().unwrap_or_else(|e| e.into_inner()).current();
    sample(ctx, cpu)
}

/// Reads this server's figures through the module API (`RedisModule_GetServerInfo`
/// per section: a dictionary, no INFO text to parse here).
fn sample(ctx: &Context, cpu: Option<Cpu>) -> Sample {
    let field = |section: &str, names: &[&str]| -> Vec<i64> {
        let info = ctx.server_info(section);
        names
            .iter()
            .map(|name| info.field(name).and_then(|v| v.parse_integer().ok()).unwrap_or(0))
            .collect()
    };
    let server = field("server", &["tcp_port"]);
    let ops = field("stats", &["instantaneous_ops_per_sec"]);
    let clients = field("clients", &["connected_clients"]);
    let memory = field("memory", &["used_memory", "maxmemory"]);
    let replication = ctx.server_info("replication");
    let offset = replication
        .field("master_repl_offset")
        .and_then(|v| v.parse_integer().ok())
        .unwrap_or(0);
    let (role, master) = if ctx.get_flags().contains(ContextFlags::SLAVE) {
        let host = replication.field("master_host").map(|v| v.to_string_lossy());
        let port = replication.field("master_port").map(|v| v.to_string_lossy());
        (Role::Replica, host.zip(port).map(|(h, p)| format!("{h}:{p}")))
    } else {
        (Role::Master, None)
    };
    let mut figures = Figures::new(role, offset, ops[0], clients[0], memory[0], memory[1]).with_cpu(cpu);
    figures.priority = replica_priority(ctx);
    Sample {
        port: u16::try_from(server[0]).unwrap_or(0),
        figures,
        master,
    }
}
fn replica_priority(ctx: &Context) -> i64 {
    super::config(ctx, "replica-priority")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

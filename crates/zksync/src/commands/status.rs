//! ZKSYNC.STATUS and the `zksync` INFO section.

use super::{arguments, no_arguments};
use crate::config::FAILSAFE;
use crate::ffi::reply::{self, CommandResult};
use crate::latency::{Hop, HOPS};
use crate::redis::fence;
use crate::status::{Fencing, Field, STATUS};
use redis_module::{Context, InfoContext, RedisString};
use zksync_core::reply::Reply;

/// `ZKSYNC.STATUS`: the fields of the INFO section, as a map.
pub fn status(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    no_arguments("zksync.status", &arguments(&args))?;
    let fields = STATUS
        .fields(fencing())
        .into_iter()
        .map(|(name, field)| {
            let value = match field {
                Field::Int(i) => Reply::Integer(i),
                Field::Text(t) => Reply::text(t),
            };
            (name, value)
        })
        .collect();
    reply::result(Reply::Map(fields))
}

/// INFO zksync. Redis names a module's default section after the module and
/// prefixes its fields with `zksync_`.
#[allow(deprecated)] // the builder API cannot name the default section
pub fn info(ctx: &InfoContext, _for_crash_report: bool) {
    ctx.add_info_section(None);
    for (name, field) in STATUS.fields(fencing()) {
        match field {
            Field::Int(i) => ctx.add_info_field_long_long(name, i),
            Field::Text(t) => ctx.add_info_field_str(name, &t),
        };
    }
    for hop in Hop::ALL {
        let histogram = HOPS.of(hop);
        let us = |q: f64| histogram.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e6);
        let value = format!(
            "p50={:.1},p99={:.1},p99.9={:.1},count={}",
            us(0.5),
            us(0.99),
            us(0.999),
            histogram.count()
        );
        ctx.add_info_field_str(&format!("latency_usec_{}", hop.name()), &value);
    }
}

fn fencing() -> Fencing {
    Fencing {
        replica: fence::is_replica(),
        fenced: fence::fenced(),
        failsafe: FAILSAFE.get(),
    }
}

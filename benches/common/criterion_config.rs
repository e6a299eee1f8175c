//! The criterion settings of the benches that run on the shared build machine.

use std::time::Duration;

use criterion::Criterion;

/// Short, steady runs rather than long ones: the build machine is shared.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

//! The one wall clock: Unix time, as tokens, stores and metrics count it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 on a clock set before 1970).
pub fn unix_now() -> i64 {
    unix_now_f64() as i64
}

/// Seconds since the Unix epoch, with the fraction (for metrics).
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

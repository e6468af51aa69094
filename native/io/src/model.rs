//! The OCALL cost model: an enclave exit costs a calibrated spin of
//! `cycles_per_exit` TSC ticks, and large transfers cost three exits.
//!
//! There is no SGX here, so the transition cost is modeled: each exit spins for
//! `EXITLESS_OCALL_CYCLES` ticks (default 8,200, the low figure HotCalls (ISCA 2017)
//! measured; benchmarks also report 17,000). A transfer above 16 KiB costs three
//! exits, as the SGX SDK bounce path Occlum's hostfs uses does
//! (`EXITLESS_OCALL_TRIPLE=0` turns that rule off). Inside a real enclave the exit
//! is real, so the spin is set to 0 and only the counters remain.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Default modeled cost of one exit, in TSC ticks (HotCalls, ISCA 2017, low figure).
pub const DEFAULT_CYCLES_PER_EXIT: u64 = 8_200;

/// Largest modeled cost of one exit (~3 ms here): far above any real OCALL; larger
/// settings are clamped to it, so a stray value cannot stall streams for hours.
pub const MAX_CYCLES_PER_EXIT: u64 = 10_000_000;

/// Default size above which one transfer costs three exits.
pub const DEFAULT_TRIPLE_ABOVE: usize = 16 * 1024;

/// Ticks per nanosecond assumed where there is no TSC to measure (3 GHz).
const ASSUMED_TICKS_PER_NS: f64 = 3.0;

/// The cost of enclave exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcallModel {
    /// TSC ticks one exit spins for; 0 inside a real enclave, where the exit is real.
    pub cycles_per_exit: u64,
    /// Transfers longer than this many bytes cost three exits; `None` disables the rule.
    pub triple_above: Option<usize>,
}

impl Default for OcallModel {
    fn default() -> Self {
        Self { cycles_per_exit: DEFAULT_CYCLES_PER_EXIT, triple_above: Some(DEFAULT_TRIPLE_ABOVE) }
    }
}

impl OcallModel {
    /// Reads `EXITLESS_OCALL_CYCLES` and `EXITLESS_OCALL_TRIPLE` (unset or unparsable: the defaults).
    pub fn from_env() -> Self {
        let cycles = std::env::var("EXITLESS_OCALL_CYCLES").ok();
        let triple = std::env::var("EXITLESS_OCALL_TRIPLE").ok();
        Self::from_vars(cycles.as_deref(), triple.as_deref())
    }

    /// The model the two variables' values describe (`from_env` without the environment).
    pub fn from_vars(cycles: Option<&str>, triple: Option<&str>) -> Self {
        let cycles_per_exit = cycles
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_CYCLES_PER_EXIT, |c| c.min(MAX_CYCLES_PER_EXIT));
        let off = triple.is_some_and(|v| matches!(v.trim(), "0" | "false" | "off" | "no"));
        Self { cycles_per_exit, triple_above: if off { None } else { Some(DEFAULT_TRIPLE_ABOVE) } }
    }

    /// Exits one pread/pwrite of `len` bytes costs: 3 above the triple threshold, else 1.
    pub fn exits_for(&self, len: usize) -> u64 {
        match self.triple_above {
            Some(limit) if len > limit => 3,
            _ => 1,
        }
    }

    /// Spins for `cycles_per_exit × exits` TSC ticks (returns at once when that is 0).
    pub fn charge(&self, exits: u64) {
        spin_ticks(self.cycles_per_exit.saturating_mul(exits));
    }

    /// Modeled nanoseconds per exit on this machine (from the process-wide calibration).
    pub fn ns_per_exit(&self) -> f64 {
        self.cycles_per_exit as f64 / calibration().ticks_per_ns
    }
}

/// How fast the TSC ticks, measured once per process against the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TscCalibration {
    /// TSC ticks per nanosecond (3.0, assumed, where there is no TSC).
    pub ticks_per_ns: f64,
    /// Whether `ticks_per_ns` was measured (false: assumed).
    pub measured: bool,
}

/// The process-wide TSC calibration (measured over ~20 ms on first use).
pub fn calibration() -> TscCalibration {
    static CALIBRATION: OnceLock<TscCalibration> = OnceLock::new();
    *CALIBRATION.get_or_init(calibrate)
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads the time-stamp counter; it has no memory effects and is
    // available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
fn spin_ticks(ticks: u64) {
    if ticks == 0 {
        return;
    }
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        std::hint::spin_loop();
    }
}

// Also under Miri, which cannot execute RDTSC: the clock-based fallback.
#[cfg(any(not(target_arch = "x86_64"), miri))]
fn spin_ticks(ticks: u64) {
    if ticks == 0 {
        return;
    }
    let span = Duration::from_nanos((ticks as f64 / ASSUMED_TICKS_PER_NS) as u64);
    let start = Instant::now();
    while start.elapsed() < span {
        std::hint::spin_loop();
    }
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
fn calibrate() -> TscCalibration {
    /// How long the calibration measures the TSC against the monotonic clock.
    const CALIBRATION_SPAN: Duration = Duration::from_millis(20);
    let (t0, c0) = (Instant::now(), rdtsc());
    while t0.elapsed() < CALIBRATION_SPAN {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (c1, t1) = (rdtsc(), Instant::now());
    let ticks_per_ns = c1.wrapping_sub(c0) as f64 / (t1 - t0).as_nanos() as f64;
    if ticks_per_ns.is_finite() && ticks_per_ns > 0.0 {
        TscCalibration { ticks_per_ns, measured: true }
    } else {
        TscCalibration { ticks_per_ns: ASSUMED_TICKS_PER_NS, measured: false }
    }
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
fn calibrate() -> TscCalibration {
    TscCalibration { ticks_per_ns: ASSUMED_TICKS_PER_NS, measured: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_for_triples_above_16_kib_unless_switched_off() {
        let m = OcallModel { cycles_per_exit: 0, triple_above: Some(16384) };
        assert_eq!(m.exits_for(0), 1);
        assert_eq!(m.exits_for(4096), 1);
        assert_eq!(m.exits_for(16384), 1);
        assert_eq!(m.exits_for(16385), 3);
        assert_eq!(m.exits_for(1 << 20), 3);
        let off = OcallModel { triple_above: None, ..m };
        assert_eq!(off.exits_for(16385), 1);
        assert_eq!(off.exits_for(1 << 20), 1);
    }

    #[test]
    fn from_vars_defaults_and_switch() {
        assert_eq!(OcallModel::from_vars(None, None), OcallModel::default());
        assert_eq!(OcallModel::default().cycles_per_exit, 8200);
        assert_eq!(OcallModel::default().triple_above, Some(16384));
        assert_eq!(OcallModel::from_vars(Some("17000"), None).cycles_per_exit, 17_000);
        assert_eq!(OcallModel::from_vars(Some("0"), None).cycles_per_exit, 0);
        assert_eq!(OcallModel::from_vars(Some("junk"), None).cycles_per_exit, 8200);
        assert_eq!(OcallModel::from_vars(None, Some("0")).triple_above, None);
        assert_eq!(OcallModel::from_vars(None, Some("1")).triple_above, Some(16384));
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn charge_spins_at_least_the_modeled_ticks() {
        let m = OcallModel { cycles_per_exit: 8200, triple_above: None };
        let start = rdtsc();
        m.charge(10);
        assert!(rdtsc().wrapping_sub(start) >= 82_000);
    }

    #[cfg(any(not(target_arch = "x86_64"), miri))]
    #[test]
    fn charge_spins_at_least_the_modeled_ticks() {
        let m = OcallModel { cycles_per_exit: 8200, triple_above: None };
        let start = Instant::now();
        m.charge(10);
        assert!(start.elapsed() >= Duration::from_nanos((82_000.0 / ASSUMED_TICKS_PER_NS) as u64));
    }

    #[test]
    fn zero_cycles_returns_at_once() {
        // With any spin at all this would never return.
        OcallModel { cycles_per_exit: 0, triple_above: None }.charge(u64::MAX);
    }

    #[test]
    fn calibration_is_sane_and_computed_once() {
        let c = calibration();
        assert!(c.ticks_per_ns.is_finite() && c.ticks_per_ns > 0.0, "{c:?}");
        assert_eq!(calibration(), c);
        let ns = OcallModel { cycles_per_exit: 8200, triple_above: None }.ns_per_exit();
        assert!(ns.is_finite() && ns > 0.0);
        assert_eq!(OcallModel { cycles_per_exit: 0, triple_above: None }.ns_per_exit(), 0.0);
    }
}

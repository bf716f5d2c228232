//! The clocks a guest sees, and `poll_oneoff` (sleeping) done so that it can neither outlast the
//! wall-clock limit nor observe real time in deterministic mode.
//!
//! wasmtime-wasi's own `poll_oneoff` sleeps on the host's clock in a host call, where neither a
//! fuel yield nor epoch interruption can reach: `sleep(3600)` would hold a worker for an hour whatever the job's
//! wall-clock limit. The sandbox therefore shadows `wasi_snapshot_preview1::poll_oneoff`:
//! subscriptions that are all clocks are answered here (virtual time jumps forward in
//! deterministic mode; real sleeps are cut at the deadline otherwise); a poll that includes a
//! file-descriptor subscription is handed to wasmtime-wasi's implementation, which returns at
//! once because every descriptor a guest can hold (files, the empty stdin, the captured
//! stdout/stderr) is always ready, so its clocks never get to sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::Caller;
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use crate::DETERMINISTIC_EPOCH_SECS;
use crate::run::{State, Stop};
use crate::shims::{self, ERRNO_FAULT, ERRNO_INVAL};

/// Nanoseconds a virtual clock advances per reading.
const VIRTUAL_TICK_NS: u64 = 1_000;

/// The clock source of one run, shared by the guest's WASI clocks and the `poll_oneoff` shim.
#[derive(Clone)]
pub(crate) enum GuestClock {
    /// Nanoseconds of virtual time since the start of the run.
    Virtual(Arc<AtomicU64>),
    /// The host's clocks; the monotonic clock counts from `start`.
    Real { start: Instant },
}

impl GuestClock {
    pub(crate) fn new(deterministic: bool) -> GuestClock {
        if deterministic {
            GuestClock::Virtual(Arc::new(AtomicU64::new(0)))
        } else {
            GuestClock::Real { start: Instant::now() }
        }
    }

    /// The clocks to install in the WASI context.
    pub(crate) fn wasi_clocks(&self) -> (WallClock, MonotonicClock) {
        (WallClock(self.clone()), MonotonicClock(self.clone()))
    }

    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self, GuestClock::Virtual(_))
    }

    /// Monotonic time in ns, without advancing a virtual clock.
    fn monotonic_ns(&self) -> u64 {
        match self {
            GuestClock::Virtual(ns) => ns.load(Ordering::Relaxed),
            GuestClock::Real { start } => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Wall-clock time in ns since the Unix epoch, without advancing a virtual clock.
    pub(crate) fn wall_ns(&self) -> u64 {
        match self {
            GuestClock::Virtual(ns) => {
                (DETERMINISTIC_EPOCH_SECS * 1_000_000_000).saturating_add(ns.load(Ordering::Relaxed))
            }
            GuestClock::Real { .. } => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        }
    }

    /// A reading by the guest: advances a virtual clock by one tick first.
    fn read(&self) -> (u64, u64) {
        if let GuestClock::Virtual(_) = self {
            self.advance(VIRTUAL_TICK_NS);
        }
        (self.wall_ns(), self.monotonic_ns())
    }

    /// Moves a virtual clock forward by `ns` (saturating: a guest asking to sleep for
    /// `u64::MAX` ns cannot wrap time around).
    fn advance(&self, ns: u64) {
        if let GuestClock::Virtual(now) = self {
            let _ = now.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_add(ns)));
        }
    }
}

pub(crate) struct WallClock(GuestClock);
pub(crate) struct MonotonicClock(GuestClock);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        match self.0 {
            GuestClock::Virtual(_) => Duration::from_nanos(VIRTUAL_TICK_NS),
            GuestClock::Real { .. } => Duration::from_nanos(1),
        }
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.read().0)
    }
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        match self.0 {
            GuestClock::Virtual(_) => VIRTUAL_TICK_NS,
            GuestClock::Real { .. } => 1,
        }
    }
    fn now(&self) -> u64 {
        self.0.read().1
    }
}

// WASI preview 1 ABI (wasi_snapshot_preview1.witx).
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const TAG_CLOCK: u8 = 0;
const TAG_FD_WRITE: u8 = 2;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1;

/// `poll_oneoff(subscriptions, events, nsubscriptions, nevents_out) -> errno`.
pub(crate) fn poll_oneoff(
    mut caller: Caller<'_, State>,
    (subs, events, nsubs, nevents): (i32, i32, i32, i32),
) -> wasmtime::Result<i32> {
    let memory = shims::memory(&mut caller)?;
    if nsubs == 0 {
        return Ok(ERRNO_INVAL);
    }
    let Some(bytes) = shims::guest_slice(memory.data(&caller), subs, shims::size(nsubs, SUBSCRIPTION_SIZE)) else {
        return Ok(ERRNO_FAULT);
    };
    let mut clocks = Vec::new();
    for sub in bytes.chunks_exact(SUBSCRIPTION_SIZE) {
        let userdata = shims::u64_at(sub, 0);
        match sub[8] {
            TAG_CLOCK => {
                let flags = u16::from_le_bytes([sub[40], sub[41]]);
                clocks.push((
                    userdata,
                    shims::u32_at(sub, 16),
                    shims::u64_at(sub, 24),
                    flags & SUBSCRIPTION_CLOCK_ABSTIME != 0,
                ));
            }
            // A descriptor subscription: wasmtime-wasi's poll, which cannot block here.
            tag if tag <= TAG_FD_WRITE => {
                return shims::with_wasi(&mut caller, |ctx, mem| {
                    shims::in_tokio(p1::poll_oneoff(ctx, mem, subs, events, nsubs, nevents))
                })?;
            }
            _ => return Ok(ERRNO_INVAL),
        }
    }

    // Only clocks: find the first to expire, in ns from now.
    let clock = caller.data().clock.clone();
    let mut waits = Vec::with_capacity(clocks.len());
    for &(_, id, timeout, absolute) in &clocks {
        let now = match id {
            CLOCK_REALTIME => clock.wall_ns(),
            CLOCK_MONOTONIC => clock.monotonic_ns(),
            _ => return Ok(ERRNO_INVAL),
        };
        waits.push(if absolute { timeout.saturating_sub(now) } else { timeout });
    }
    let wait = waits.iter().copied().min().unwrap_or(0);
    match &clock {
        GuestClock::Virtual(_) => clock.advance(wait),
        GuestClock::Real { .. } => {
            let remaining = caller.data().deadline.saturating_duration_since(Instant::now());
            if Duration::from_nanos(wait) >= remaining {
                std::thread::sleep(remaining);
                caller.data_mut().stop = Some(Stop::Timeout);
                wasmtime::bail!("wall-clock limit reached while sleeping");
            }
            std::thread::sleep(Duration::from_nanos(wait));
        }
    }

    let fired: Vec<u64> = clocks.iter().zip(&waits).filter(|(_, w)| **w <= wait).map(|(c, _)| c.0).collect();
    let out = memory.data_mut(&mut caller);
    let Some(events_bytes) = shims::guest_slice_mut(out, events, fired.len() * EVENT_SIZE) else {
        return Ok(ERRNO_FAULT);
    };
    for (event, userdata) in events_bytes.chunks_exact_mut(EVENT_SIZE).zip(&fired) {
        event.fill(0); // error = success, type = clock (0), fd_readwrite zeroed
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
    }
    shims::write_u32(out, nevents, fired.len() as u32)
}

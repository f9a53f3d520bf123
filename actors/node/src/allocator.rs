//! The global allocator of drover's processes and its settings, in one place.
//!
//! Both binaries that run device actors — `drover` and `drover-bench` (whose `node` child is
//! what `drover-bench fleet` measures) — declare
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: drover_node::allocator::Allocator = drover_node::allocator::ALLOCATOR;
//! ```
//!
//! and call [`configure`] at the start of `main`, before the async runtime starts its threads.
//!
//! **Why jemalloc.** A node holds tens of thousands of long-lived small objects per thousand
//! devices (actor mailboxes, TLS state, tasks) between which every poll allocates and frees
//! short-lived ones. glibc malloc kept ≈ 11 KiB per device of overhead and fragmentation on top
//! of ≈ 25 KB live (benches/RESULTS.md, "Allocator"); jemalloc's size-class slabs do not mix
//! long- and short-lived chunks the same way.
//!
//! **Why the settings are applied at run time.** jemalloc reads its options before `main`
//! from an exported `malloc_conf` symbol, which needs `#[unsafe(no_mangle)]` — and
//! `unsafe_code` is forbidden in this workspace — or from the environment, which an operator's
//! unit file should not have to carry. The settings drover needs can all be changed at run
//! time through `mallctl` with `tikv-jemalloc-ctl`'s safe interface, so [`configure`] does
//! that. An operator can still override them for an experiment with `_RJEM_MALLOC_CONF`
//! (jemalloc's `MALLOC_CONF` under this build's prefix); [`configure`] then leaves alone the
//! options named there.

use tikv_jemalloc_ctl::{Access, AsName};

/// The allocator type the binaries install.
pub type Allocator = tikv_jemallocator::Jemalloc;

/// The allocator value the binaries install.
pub const ALLOCATOR: Allocator = tikv_jemallocator::Jemalloc;

/// The jemalloc variable an operator can set to override [`SETTINGS`] for an experiment.
pub const OVERRIDE_ENV: &str = "_RJEM_MALLOC_CONF";

/// jemalloc settings drover changes from jemalloc's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Purge unused pages from a background thread, so an idle process also returns memory
    /// (without it jemalloc purges only while allocating).
    pub background_thread: bool,
    /// How long unused dirty pages are kept before they are returned to the kernel
    /// (jemalloc's default: 10 s, which at a 10–60 s poll interval keeps a poll's worth of
    /// freed pages resident).
    pub dirty_decay_ms: isize,
    /// The same for pages already advised as lazily freeable (jemalloc's default: 0).
    pub muzzy_decay_ms: isize,
}

/// What [`configure`] applies.
pub const SETTINGS: Settings = Settings {
    background_thread: true,
    dirty_decay_ms: 1_000,
    muzzy_decay_ms: 0,
};

/// Applies [`SETTINGS`] (each one unless `_RJEM_MALLOC_CONF` names it). Call it once at the
/// start of `main`, before other threads exist: the decay times become the defaults of
/// arenas created later and are set on the arenas that exist already.
pub fn configure() -> Result<(), tikv_jemalloc_ctl::Error> {
    let overridden = std::env::var(OVERRIDE_ENV).unwrap_or_default();
    let named = |option: &str| {
        overridden
            .split(',')
            .any(|kv| kv.split(':').next() == Some(option))
    };
    if !named("dirty_decay_ms") {
        set_decay(
            b"arenas.dirty_decay_ms\0",
            b"arena.0.dirty_decay_ms\0",
            SETTINGS.dirty_decay_ms,
        )?;
    }
    if !named("muzzy_decay_ms") {
        set_decay(
            b"arenas.muzzy_decay_ms\0",
            b"arena.0.muzzy_decay_ms\0",
            SETTINGS.muzzy_decay_ms,
        )?;
    }
    if !named("background_thread") {
        tikv_jemalloc_ctl::background_thread::write(SETTINGS.background_thread)?;
    }
    Ok(())
}

/// Sets a decay time as the default of new arenas (`default_key`) and on every arena that
/// exists already (`arena_key` with its index replaced).
fn set_decay(
    default_key: &'static [u8],
    arena_key: &'static [u8],
    ms: isize,
) -> Result<(), tikv_jemalloc_ctl::Error> {
    default_key.name().write(ms)?;
    let mut mib = arena_key.name().mib::<[usize; 3]>()?;
    let arenas: u32 = b"arenas.narenas\0".name().read()?;
    for index in 0..arenas as usize {
        mib[1] = index;
        // An arena not created yet has no settings to change ("arena.<i>" answers EFAULT);
        // it takes the new default when a thread first uses it.
        let _ = mib.write(ms);
    }
    Ok(())
}

/// The settings in force now, read back from jemalloc.
pub fn current() -> Result<Settings, tikv_jemalloc_ctl::Error> {
    Ok(Settings {
        background_thread: tikv_jemalloc_ctl::background_thread::read()?,
        dirty_decay_ms: b"arenas.dirty_decay_ms\0".name().read()?,
        muzzy_decay_ms: b"arenas.muzzy_decay_ms\0".name().read()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_applies_the_settings() {
        configure().unwrap();
        if std::env::var_os(OVERRIDE_ENV).is_none() {
            assert_eq!(current().unwrap(), SETTINGS);
        }
        // Arena 0 exists from jemalloc's start: its own decay time was changed too.
        let arena0: isize = b"arena.0.dirty_decay_ms\0".name().read().unwrap();
        assert_eq!(arena0, current().unwrap().dirty_decay_ms);
    }

    #[test]
    fn configure_can_be_called_again() {
        configure().unwrap();
        configure().unwrap();
    }
}

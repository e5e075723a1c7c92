//! The `mm-edge` binary: parse the command line and hand over to [`mm_edge::app`].

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (its `malloc_conf`, read before the first allocation; an
/// `_RJEM_MALLOC_CONF` environment variable still overrides them).
///
/// `tcache_nslots_small_min:64`: each thread keeps up to 64 freed blocks of each small size for
/// reuse (jemalloc's minimum is 20, which is what every size above 128 bytes gets). hyper takes
/// a fresh 8 KiB read buffer for nearly every message on both sides while the last message
/// still holds the old one, so dozens of connections at once overflowed 20 slots: each overflow
/// gave blocks back to the arena and the next burst fetched them again (about 11,000
/// instructions a refill). The cost is a per-thread cache, trimmed by jemalloc while unused (at
/// most about 6 MB per thread if every size filled its cache at once), not memory per
/// connection.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&u8> = Some(&b"tcache_nslots_small_min:64\0"[0]);

fn main() -> std::process::ExitCode {
    #[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
    jemalloc_gives_memory_back();
    match mm_edge::config::cli::parse_from(std::env::args_os()) {
        Ok(cli) => mm_edge::app::main(cli),
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// After a flood of connections, memory goes back to the system: freed pages are purged by
/// jemalloc's own background thread after a second, with `MADV_DONTNEED` (pages only marked
/// `MADV_FREE` would stay counted in the RSS until the kernel wants them). Set on every arena
/// that exists (`arena.<i>.`; the all-arenas index 4096 is refused for these controls) and as
/// the default for arenas made later (`arenas.`).
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
fn jemalloc_gives_memory_back() {
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let narenas = tikv_jemalloc_ctl::arenas::narenas::read().unwrap_or(0);
    let prefixes = (0..narenas)
        .map(|i| format!("arena.{i}."))
        .chain(std::iter::once("arenas.".to_string()));
    for prefix in prefixes {
        for (name, ms) in [("dirty_decay_ms", 1000isize), ("muzzy_decay_ms", 0)] {
            let mut key = format!("{prefix}{name}").into_bytes();
            key.push(0);
            // SAFETY: `key` is a NUL-terminated name of a documented jemalloc control
            // (arena.<i>.dirty_decay_ms, arenas.dirty_decay_ms and their muzzy pairs) whose
            // value type is ssize_t, which `isize` is on every platform Rust supports; jemalloc
            // copies the value and keeps no pointer to it.
            let _ = unsafe { tikv_jemalloc_ctl::raw::write(&key, ms) };
        }
    }
}

//! How a Tessera process starts: the allocator tuned, then the async runtime.

/// glibc malloc arenas a process may create.
///
/// By default glibc gives every thread that meets contention its own arena, up to eight per
/// core, and memory freed in one arena is not reused by another: a chain of stages whose
/// threads (the runtime's workers, blocking readers, typing workers, encoders) each allocate
/// and free large buffers ends up holding far more than it uses. Two arenas keep the resident
/// set close to the live heap at no measurable cost in time (`docs/bench.md`).
pub const MALLOC_ARENAS: i32 = 2;

/// Allocations from this size up are mapped on their own and returned to the system when
/// freed.
///
/// glibc's threshold starts at 128 KiB and rises to the largest block freed so far, so after the
/// first batches the buffers a stage allocates and frees by the hundred (chunks of records, Arrow
/// arrays, pages) come from the heap, whose free space glibc rarely hands back once it is
/// fragmented: at 10M rows ingest's resident set grew from 105 to 150 MiB with no more live data.
/// Fixed at 1 MiB, it stayed at 75 to 85 MiB.
pub const MALLOC_MMAP_THRESHOLD: i32 = 1 << 20;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] and fixes its mmap threshold at
/// [`MALLOC_MMAP_THRESHOLD`], unless `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or
/// `GLIBC_TUNABLES` in the environment say otherwise. Call it first thing, before any thread
/// starts.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let set = |name: &str, tunable: &str| {
            std::env::var_os(name).is_some() || tunables.contains(tunable)
        };
        // SAFETY: `mallopt` only changes a tuning parameter of the allocator; it reads no
        // pointer and is called before other threads exist.
        #[allow(unsafe_code)]
        unsafe {
            if !set("MALLOC_ARENA_MAX", "malloc.arena_max") {
                libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
            }
            if !set("MALLOC_MMAP_THRESHOLD_", "malloc.mmap_threshold") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
            }
        }
    }
}

/// The multi-threaded runtime every Tessera binary runs on, after [`tune_malloc`].
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tune_malloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Blocks mapped on their own, now.
    #[allow(unsafe_code)]
    fn mapped_blocks() -> usize {
        // SAFETY: `mallinfo2` only reads the allocator's counters.
        unsafe { libc::mallinfo2().hblks }
    }

    #[test]
    fn a_large_block_is_mapped_even_after_larger_ones_were_freed() {
        tune_malloc();
        // Dynamic, glibc's threshold would now rise past 4 MiB: the 2 MiB block would come
        // from the heap.
        drop(std::hint::black_box(vec![1u8; 4 << 20]));
        let before = mapped_blocks();
        let block = std::hint::black_box(vec![1u8; 2 << 20]);
        assert!(mapped_blocks() > before, "a 2 MiB block came from the heap");
        drop(block);
    }
}

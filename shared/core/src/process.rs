//! How a Tessera process starts: the allocator tuned, then the async runtime.

/// glibc malloc arenas a process may create.
///
/// By default glibc gives every thread that meets contention its own arena, up to eight per
/// core, and memory freed in one arena is not reused by another: a chain of stages whose
/// threads (the runtime's workers, blocking readers, typing workers, encoders) each allocate
/// and free large buffers ends up holding far more than it uses. Two arenas keep the resident
/// set close to the live heap at no measurable cost in time (`docs/bench.md`).
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], unless `MALLOC_ARENA_MAX` in the environment
/// says otherwise. Call it first thing, before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only changes a tuning parameter of the allocator; it reads no
        // pointer and is called before other threads exist.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// The multi-threaded runtime every Tessera binary runs on, after [`limit_malloc_arenas`].
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

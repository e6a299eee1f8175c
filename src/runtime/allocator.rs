//! How the process uses the system allocator (glibc's malloc): the settings it starts with,
//! and giving freed memory back to the system.
//!
//! Which question it answers: "why does the process shrink after a burst?" glibc serves a
//! block of at least its mmap threshold with a mapping of its own, returned to the system
//! when it is freed; smaller blocks come from arena heaps, whose free pages stay with the
//! process. The threshold is dynamic by default: each large block freed raises it (up to 32
//! MiB), so after one seal round or compaction has freed its large buffers, the next ones of
//! that size come from the heaps and keep them grown. Measured with 300,000 one-line streams
//! pushed, sealed, compacted and evicted (2 cores): 790 MiB resident at rest with the
//! dynamic threshold, 273 MiB with a fixed one of 256 KiB, the live heap being 133 MiB.
//! Setting it also turns off the dynamic adjustment (glibc's `mallopt` manual).
//!
//! Small blocks freed in bulk (a compaction's per-stream maps, an eviction's streams) leave
//! free pages scattered through the heaps, which glibc returns only from a heap's top.
//! [`give_back_freed_memory`] returns all of them (`malloc_trim`); it runs after a large
//! eviction, and from each sweep when the heaps hold more than [`FREE_BYTES_TRIM_MIN`] free.

/// The fixed mmap threshold: blocks of 256 KiB and more get mappings of their own. Larger
/// than the per-line and per-stream allocations of the data path (so those never pay a
/// system call), smaller than the block, part and compaction buffers whose memory must go
/// back when they are freed.
const MMAP_THRESHOLD_BYTES: i32 = 256 * 1024;

/// Sets the allocator up; called once, before any other thread starts (glibc's `mallopt` is
/// not meant to race with allocations on other threads).
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only stores an allocator parameter; it takes no pointer, and no other
    // thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Free bytes in the heaps above which a sweep gives them back: well above what the data
/// path frees and takes again between two sweeps, so that it is not trimmed to refault.
pub const FREE_BYTES_TRIM_MIN: usize = 64 << 20;

/// Bytes the heaps hold free (glibc's `mallinfo2().fordblks`; 0 elsewhere).
pub fn free_heap_bytes() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 fills and returns a plain struct of counters; it takes no
        // pointer.
        let info = unsafe { libc::mallinfo2() };
        info.fordblks
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// Gives the heaps' free pages back when they hold more than [`FREE_BYTES_TRIM_MIN`];
/// returns whether it did.
pub fn give_back_if_much_is_free() -> bool {
    if free_heap_bytes() < FREE_BYTES_TRIM_MIN {
        return false;
    }
    give_back_freed_memory();
    true
}

/// Returns the free pages of every allocator arena to the system (glibc's `malloc_trim`):
/// for the holes a large eviction leaves scattered through the heaps, which the allocator
/// does not return by itself.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks; it
    // takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

// The small-file fast path: one call that opens a file beneath the root, fstats it and reads it
// whole — but only from the kernel's caches, so it may run on the JS thread without ever
// waiting for a disk. openat2 gets RESOLVE_CACHED (kernel >= 5.12: EAGAIN unless every lookup
// step is in the dentry cache) and preadv2 gets RWF_NOWAIT (EAGAIN, or a short read, unless the
// data is in the page cache). Any EAGAIN means "take the ordinary asynchronous path".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "fs_ops.h"

namespace ng {

// Returns the number of bytes read into buf (the whole content of a regular file of at most
// `max` bytes; buf must hold `max`), or -errno: -EAGAIN when the caches cannot answer; -EISDIR
// (a directory), -ENXIO (another kind of file) or -EFBIG (larger than `max`) with *st filled.
long fs_read_small_cached(int dir, const std::string& rel, char* buf, size_t max, StatResult* st);

// The status of `rel` (`length` bytes and a NUL) under `dir` in one system call (fstatat,
// following symlinks as openat2 does, never triggering an automount): 0 with *st filled, or
// -errno. Not confined to the root (fstatat has no RESOLVE_BENEATH): it only revalidates what
// fs_read_small_cached read beneath it (routes/small-file-cache.ts), never decides what may be
// served.
long fs_stat_at(int dir, const char* rel, size_t length, StatResult* st);

}  // namespace ng

"""The password hasher: Argon2id at OWASP's recommended minimum.

Django's ``Argon2PasswordHasher`` defaults to 100 MiB, two passes and eight
lanes: about 140 ms of CPU per hash on a 2-core machine, so one login or
registration costs more than every other request of a client's session
together, and a burst of logins queues behind the hashes. OWASP's Password
Storage Cheat Sheet gives equivalent Argon2id settings that trade memory for
passes; the first of them, m = 19 MiB, t = 2, p = 1, is its stated minimum and
costs about a sixth (~25 ms here). Stronger settings are a subclass away.

The algorithm name stays ``argon2``: hashes made with Django's defaults are
still this hasher's to check, and Django's ``must_update`` (the parameters
differ) rehashes them with these settings on the next successful login
(``users.services.user_authenticate``); a password is never rehashed
without its owner typing it.

Memory: each hash allocates its 19 MiB in one block. glibc's malloc serves
blocks that large with mmap and unmaps them when freed, but it raises its
mmap threshold to the size of a freed mapping (up to 32 MiB), so after the
first hash every later one comes from the heap of the thread's malloc arena,
which keeps it: eight threads that hashed once held 153 MiB more. Fixing the
threshold (``M_MMAP_THRESHOLD``, which also stops the raising) gives every
hash's block back when it is freed, at the cost of touching fresh pages each
time (22.6 -> 31.8 ms per hash here: logins stay under 50 ms).

Those fresh pages are about 4,900 page faults per hash in 4 KiB pages, which
on a VM whose faults are slow cost as much as the hash itself (about 20 ms of
CPU per login on the 2-core AMD VM). The image therefore sets
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (docker/Dockerfile): malloc asks for
transparent huge pages on the blocks it maps, so a hash's block faults in
2 MiB pages, about 270 faults per login (tests/live/test_login_memory.py).
The variable must be in the environment when the process starts; where the
kernel's THP is "never" it changes nothing.
"""

import ctypes
import ctypes.util

from django.contrib.auth.hashers import Argon2PasswordHasher

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024  # below one hash's block, above most others


def _unmap_hash_blocks() -> bool:
    """Fix glibc's mmap threshold for this process; False where there is no
    glibc (another libc keeps its own policy)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


HASH_BLOCKS_UNMAPPED = _unmap_hash_blocks()


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's minimum)."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1

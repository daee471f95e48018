"""
common.py: the few helpers every script needs, each written once (nanochat's common.py is the model).

    write_atomic / write_json     a file is either the old one or the whole new one, never half
    publish_dir                   a finished directory replaces the old one; the old one survives a failure
    run_lock                      one process at a time in a directory (prepare's --out, train's out_dir)
    UserError / cli               a one-line "error: ..." instead of a traceback, and a non-zero exit code
    rss_bytes / reset_peak_rss    what Linux says this process holds in RAM, now and at its peak
    keep_freed_memory           glibc keeps freed tensors' pages (speed); release_freed_memory: returns them
    dataset_path                  "default" -> data/default; a path stays a path
    PEAK_FLOPS / device_peak_flops  the bf16 dense peak of a GPU, for MFU

Nothing here imports another module of the project, so anything may import it without a cycle.
"""
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------------------
# errors a user can act on


class UserError(SystemExit):
    """Bad input or a refused operation: the CLI prints the message on one line, with no traceback.
    A SystemExit, so a script that never calls cli() still ends with the one line (and exit code 1),
    and `except Exception` in a retry loop does not swallow it."""


def cli(main, argv=None):
    """Run main(argv); a UserError (or a full disk) becomes `error: ...` on stderr and exit code 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------------------
# atomic writes: temp file in the same directory -> fsync -> rename (rename is atomic on one filesystem)


def fsync_dir(path):
    """Make a rename inside `path` durable: the directory entry itself is data a crash can lose."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data, mode=0o644):
    """data: bytes, str (UTF-8), or a function write(f) that writes into a binary file.
    A crash, a kill or a full disk leaves the old file (or none), never a partial one, and no temp file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{path}: cannot write ({e.strerror})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes private 0600 files; runs and datasets are meant to be shared
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(f"disk full while writing {path}") from e
        raise


def write_json(path, obj):
    write_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def publish_dir(tmp, folder):
    """A finished temp directory (beside `folder`, same filesystem) replaces `folder`. The old one is
    moved aside first and deleted only after the new one is in place: a crash in between leaves
    `folder.old`, never nothing."""
    tmp, folder = Path(tmp), Path(folder)
    os.chmod(tmp, 0o755)  # mkdtemp makes private 0700 directories
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# one process per directory


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def run_lock(folder, what="run"):
    """Take `folder`.lock (beside it, so the folder itself can be swapped): O_EXCL creation is atomic.
    The lock holds "pid host"; a lock left by a dead process on this host is stale and taken over.
    Returns the lock's path; release_lock(path) removes it."""
    folder = Path(folder)
    lock = folder.with_name(folder.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid, host = lock.read_text().split()[:2]
            except (OSError, ValueError):
                pid, host = "0", socket.gethostname()  # empty or unreadable: its writer died mid-write
            if host == socket.gethostname() and not _pid_alive(int(pid)):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise UserError(f"{folder}: another {what} holds {lock} (pid {pid} on {host}); "
                            f"wait for it, or delete the lock if that process is gone") from None
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        return lock
    raise UserError(f"{lock}: could not take the lock")


def release_lock(lock):
    Path(lock).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# memory: Linux's own accounting of this process (the CPU twin of torch.cuda.max_memory_allocated)


def rss_bytes(field="VmRSS"):
    """VmRSS: resident now; VmHWM: the peak since the process started or reset_peak_rss()."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) * 1024


def reset_peak_rss():
    """Writing 5 to clear_refs resets VmHWM to the current RSS (torch.cuda.reset_peak_memory_stats for RAM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb():
    """Peak resident memory of this process in MiB (getrusage: also works where /proc does not)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---------------------------------------------------------------------------------------------------------
# datasets and devices


def dataset_path(dataset):
    """train.py's `dataset` key: a name under data/ ("default"), or a path (it contains a '/')."""
    return Path(dataset) if "/" in str(dataset) or os.sep in str(dataset) else Path("data") / str(dataset)


# Dense bf16 tensor-core peaks from the vendors' datasheets (no sparsity), FLOP/s.
PEAK_FLOPS = {
    "A100": 312e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "H200": 989e12,  # same compute as H100 SXM, more and faster memory
}


def device_peak_flops(device):
    """PEAK_FLOPS for a CUDA device by its name ("NVIDIA H100 80GB HBM3" -> H100), None on a CPU or an
    unknown GPU (then no MFU is reported rather than a made-up one)."""
    import torch
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in PEAK_FLOPS:  # "H100 PCIe" is checked before "H100"
        if all(word in name for word in key.split()):
            return PEAK_FLOPS[key]
    return None


def save_figure(fig, path, dpi=80):
    """A matplotlib figure as a PNG, atomically; the figure is closed."""
    import io
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _mallopt(settings):
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        for option, value in settings:
            libc.mallopt(option, value)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
# keep_freed_memory's settings; as environment variables for another process: MALLOC_<NAME>_=value
KEEP_FREED = {"MMAP_THRESHOLD": (M_MMAP_THRESHOLD, 32 << 20), "TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 1 << 30)}


def release_freed_memory():
    """Make RSS follow live tensors. glibc serves allocations under 32 MiB from heaps it rarely returns,
    so RSS would count freed tensors too (the CPU twin of CUDA's "reserved" memory). Above 64 KiB every
    allocation then gets its own mmap, which free() unmaps. Costs speed: every tensor gets fresh pages."""
    _mallopt([(M_MMAP_THRESHOLD, 65536)])


def keep_freed_memory():
    """The opposite, for speed (train.py on a CPU): every step allocates and frees the same activations.
    By default glibc mmaps the large ones and hands their pages back on free, so the next step
    page-faults them in again and the kernel zeroes each page: at nanoGPT's shape a fifth of the bf16
    step. Serving up to 32 MiB (glibc's largest threshold) from the heap and never trimming it keeps
    those pages mapped, like CUDA's caching allocator keeps freed blocks. RSS then stays at the peak."""
    _mallopt(KEEP_FREED.values())


def mfu(tokens_per_s, peak_flops, flops_per_token):
    """Model FLOPs utilisation: the fraction of the device's peak that the model's own arithmetic uses."""
    return tokens_per_s * flops_per_token / peak_flops

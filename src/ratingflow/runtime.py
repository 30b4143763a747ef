"""Process set-up for pipeline steps: logging to the rule's log, JAX device, threads and cache.

Import this before anything that imports JAX: XLA reads its flags when JAX is first imported.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
import warnings
from pathlib import Path


#: NumPy's CPU features a job turns off on AMD Zen 4 (:func:`prefer_avx2_sort`): its AVX-512 code, never its AVX2
NUMPY_ZEN4_OFF = "X86_V4 AVX512_ICL AVX512_SPR"


def zen4(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo``'s text is an AMD Zen 4 processor: AuthenticAMD, family 25 (0x19), with AVX-512
    (Zen 3, of the same family, has none; Zen 5 is family 26)."""
    first = cpuinfo.split("\n\n", 1)[0]
    fields = dict(re.findall(r"^([^:\n]+?)\s*:\s*(.*)$", first, re.M))
    return (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
            and "avx512f" in fields.get("flags", "").split())


def prefer_avx2_sort(cpuinfo="/proc/cpuinfo") -> bool:
    """On AMD Zen 4, make NumPy run its AVX2 code, not its AVX-512 code (``NPY_DISABLE_CPU_FEATURES``). NumPy's sorts
    (x86-simd-sort) store each AVX-512 partition step with ``vpcompressd`` to memory, which Zen 4 runs as slow
    microcode (numpy/x86-simd-sort issue 6): on the benchmark's VM (EPYC, family 25) a rating table's bands, 4000
    draws x 400 stages of float32 sorted, took 23-25 ms with AVX-512 and 6-8 ms with AVX2 (issue 16). A sort's result
    is the same either way; other functions (``np.exp`` in float64) can differ in the last bit.

    Only before NumPy is imported (the setting is read then), where the processor is a Zen 4 (:func:`zen4`) and
    where ``NPY_DISABLE_CPU_FEATURES`` is not set already: set it, even empty, to keep NumPy's own choice.
    Returns whether it set it."""
    if "numpy" in sys.modules or "NPY_DISABLE_CPU_FEATURES" in os.environ:
        return False
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:  # not Linux
        return False
    if not zen4(text):
        return False
    os.environ["NPY_DISABLE_CPU_FEATURES"] = NUMPY_ZEN4_OFF
    return True


def configure_jax(threads: int = 1, cache_dir: str | None = None, platform: str = "cpu",
                  avx2_sorts: bool = False) -> None:
    """Set JAX's platform, CPU threads and persistent compilation cache; with ``avx2_sorts``, NumPy's sorts on AMD
    Zen 4 (:func:`prefer_avx2_sort`: the jobs that sort draws into bands, summarise and the discharge series; the
    fit keeps NumPy's own code, so that its importance sampler's draws, resampled by NumPy, do not depend on it).

    Must run before JAX is imported for the thread settings to apply, and before NumPy is for ``avx2_sorts``. It does
    not import JAX itself.

    On the CPU, ``threads`` also sizes the pool that runs a program (``PJRT_NPROC``). Without it, that pool has a
    thread per core the process may use, whatever the XLA flags say, and they keep each other busy: a warm fit job
    of 9 stations padded to 256 gaugings took 19.7 s wall and 32.8 s CPU with two threads, and 18.7 s wall and
    20.6 s CPU with one (same draws). On 2 cores with two one-thread jobs at once, the extra CPU is taken from the
    other job.
    """
    if avx2_sorts:
        prefer_avx2_sort()
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if threads and "intra_op_parallelism_threads" not in flags:
            flags += f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
            flags += f" intra_op_parallelism_threads={int(threads)}"
        os.environ["XLA_FLAGS"] = flags.strip()
        if threads and platform == "cpu":
            # read by XLA's CPU client (DefaultThreadPoolSize) for its pool; an explicit setting wins. Not on a GPU
            # (the GPU client sizes its host pools the same way; one thread there was not measured)
            os.environ.setdefault("PJRT_NPROC", str(int(threads)))
        # cpu: never look for a GPU; gpu: use CUDA (fails loudly without one); auto: JAX decides
        if platform in ("cpu", "gpu"):
            os.environ.setdefault("JAX_PLATFORMS", "cuda" if platform == "gpu" else "cpu")
        # shared GPU nodes: take GPU memory as needed, not 75 % of it up front
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache = {"jax_compilation_cache_dir": str(cache_dir), "jax_persistent_cache_min_compile_time_secs": 0.0,
                 "jax_persistent_cache_min_entry_size_bytes": 0}
        if "jax" in sys.modules:
            import jax

            for name, value in cache.items():
                jax.config.update(name, value)
        else:
            # JAX reads these when it is imported: a job that never needs it (a discharge job of stations without
            # stage records) does not pay its import (0.6 s)
            os.environ.update({name.upper(): str(value) for name, value in cache.items()})
    _count_cache_lookups()
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")


#: JAX's DEBUG records of the time it spends making a program (``jax._src.dispatch``), by what they time
_TIMED = (("Finished tracing", "tracing"), ("Finished jaxpr to MLIR", "lowering"),
          ("Finished XLA compilation", "compiling"))


class _CacheCounter(logging.Handler):
    """Counts JAX's persistent-cache lookups of this process and the seconds it spent making programs, from JAX's
    DEBUG records: tracing, lowering to MLIR, and XLA compilation, which is *loading* where the persistent cache
    had the program (the cache's hit is logged inside the compilation's timed block, just before it ends). A
    record gives its duration and its end, so the seconds are the union of the intervals of each kind: a jitted
    function traced inside another's tracing is not counted twice."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.hits = self.misses = 0
        self.intervals: dict[str, list] = {kind: [] for kind in ("tracing", "lowering", "compiling", "loading")}
        self._lookup = None  # the last cache lookup ("hit" or "miss") not yet matched with its compilation

    def emit(self, record):
        text = record.getMessage()
        if text.startswith("Persistent compilation cache hit"):
            self.hits += 1
            self._lookup = "hit"
        elif text.startswith("PERSISTENT COMPILATION CACHE MISS"):
            self.misses += 1
            self._lookup = "miss"
        for prefix, kind in _TIMED:
            if text.startswith(prefix):
                match = re.search(r" in ([0-9.eE+-]+) sec", text)
                if kind == "compiling":
                    kind, self._lookup = ("loading" if self._lookup == "hit" else "compiling"), None
                if match:
                    self.intervals[kind].append((record.created - float(match.group(1)), record.created))

    def seconds(self, kind: str) -> float:
        """Wall seconds covered by the records of ``kind`` (the union of their intervals)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.intervals[kind]):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


_COUNTER = _CacheCounter()


def release_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    XLA's compilation of a program takes its working memory from the C heap and frees it, but glibc keeps the
    freed pages: each compilation in a job added to the job's resident memory, and a cold fit job that compiled 24
    programs peaked at 2.0 GB. Trimmed after each new program, a job holds its programs and data plus one
    compilation's working memory (/tmp probe, bucket 256: 1491 MB resident after four programs, 724 MB with a trim
    after each; a trim took 0.01-0.1 s)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _LIBC = False
    if _LIBC:
        _LIBC(0)


_LIBC = None


def _count_cache_lookups() -> None:
    for name in ("jax._src.compiler", "jax._src.dispatch"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        if _COUNTER not in logger.handlers:
            logger.addHandler(_COUNTER)
        logger.propagate = False


def cache_summary() -> str:
    """Programs of this process loaded from the persistent cache (hits) and compiled (misses), and the seconds it
    spent making programs: ``bench/run.py`` sums these lines over a run's logs."""
    seconds = ", ".join(f"{kind} {_COUNTER.seconds(kind):.1f}" for kind in _COUNTER.intervals)
    return (f"jax persistent compilation cache: {_COUNTER.hits} hit(s), {_COUNTER.misses} miss(es) "
            f"(programs compiled); seconds making programs: {seconds}")


@contextlib.contextmanager
def logged(path: str | None):
    """Send stdout and stderr (Python and C level) to the rule's log file."""
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log:
        job = os.environ.get("SLURM_JOB_ID")
        if job:
            log.write(f"SLURM_JOB_ID={job} on {os.uname().nodename}\n")
            log.flush()
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    yield
                except BaseException:
                    traceback.print_exc()
                    raise
                finally:
                    if _COUNTER.hits or _COUNTER.misses or any(_COUNTER.intervals.values()):
                        progress(cache_summary())
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def progress(message: str) -> None:
    """One timestamped line (UTC) in the job's log, flushed at once so that a running job can be watched."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} {message}", flush=True)

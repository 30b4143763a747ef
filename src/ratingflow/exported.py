"""Traced programs kept across processes (``jax.export``), so that a new job does not trace them again.

JAX's persistent compilation cache saves XLA's compilation, but every process still traces and lowers its
jitted functions in Python first. For the NUTS driver that took about 5 s per program (one station's fit job,
warm cache, 2-core VM: 10 of its 17 s), paid again by every fit job. :func:`cached_jit` serializes the
traced program (StableHLO) next to the compilation cache the first time, and later processes deserialize
it: no tracing, and the compilation itself is then a hit of the persistent cache.

The file's key holds everything the program depends on: the caller's ``key`` (structure, settings,
priors), the arguments' shapes (symbolic where the caller traces for any size) and dtypes, the backend, the
versions of jax, jaxlib and numpyro, and the source of the ratingflow package (any change of the code makes new
programs, never stale ones).
Every call goes through the deserialized program, also in the process that traced it, so a station's
draws do not depend on whether its job found the file.

A program is made (traced, compiled, or loaded from the caches) under a lock of its own (:func:`_making`): two jobs
that need the same new program at once, as the first fits of a cold run do, make it once; the second waits and loads
it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from .reuse import package_digest
from .runtime import release_memory

#: folder under the compilation cache
FOLDER = "ratingflow-exports"


@functools.cache
def _code_version() -> str:
    """sha256 of the package's source files and of the versions of what traces and compiles them."""
    from importlib.metadata import version

    import jaxlib

    # NumPyro's version from its metadata: a job that loads its programs does not import it (model._numpyro)
    versions = f"{jax.__version__}|{jaxlib.__version__}|{version('numpyro')}|{jax.default_backend()}"
    return hashlib.sha256(f"{versions}|{package_digest()}".encode()).hexdigest()


def on_device(tree, dtype=None):
    """NumPy arrays (or a dict, a tuple of them) on JAX's device with the dtypes ``jnp.asarray`` gives them (float64 as
    float32, int64 as int32, unless x64 is on), ``dtype`` first given by NumPy, without running a program.
    ``jnp.asarray`` of a NumPy array runs a compiled identity program (``jit(stage)``; ``jit(convert_element_type)``
    with a ``dtype``), one for each shape and dtype it meets. With the persistent cache each process looked each of
    them up (lowered it, hashed it, loaded it): 51 such programs in a cold 500-station run, dozens in every job."""
    if dtype is not None:
        tree = jax.tree.map(lambda x: np.asarray(x, dtype), tree)
    return jax.device_put(tree)


def _folder() -> Path | None:
    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / FOLDER if cache else None


def cached_jit(fn, key: str, shapes=None):
    """``jax.jit(fn)``, traced once per signature across processes when a persistent compilation cache is
    set (:func:`ratingflow.runtime.configure_jax`); without one, plain ``jax.jit``. ``key`` must name
    everything ``fn`` closes over that changes its program.

    ``shapes(args)``: the shapes to trace ``fn`` with (``jax.ShapeDtypeStruct``), some dimensions symbolic
    (``jax.export.symbolic_shape``): one traced program then serves every size of them, compiled for each size
    it meets (the sampler: every shape bucket). Such a program is traced (in memory) also without a persistent
    cache, so that the results come from the same program either way."""
    plain = jax.jit(fn)
    loaded: dict = {}
    compiled: set = set()

    def call(*args):
        sizes = tuple(getattr(x, "shape", None) for x in jax.tree.leaves(args))
        if sizes in compiled:
            return _call(*args)
        # the first call of a shape traces or loads the program, and compiles or loads it: once across processes
        with _making(_folder(), repr((key, sizes))):
            result = _call(*args)
        compiled.add(sizes)
        release_memory()
        return result

    def _call(*args):
        folder = _folder()
        if folder is None and shapes is None:
            return plain(*args)
        specs = shapes(args) if shapes else jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), args)
        leaves, tree = jax.tree.flatten(specs)
        signature = repr((key, str(tree), [(str(x.shape), str(x.dtype)) for x in leaves]))
        program = loaded.get(signature)
        if program is None:
            try:
                exported = (_load_or_export(folder, signature, plain, specs) if folder is not None
                            else jax.export.export(plain)(*specs))
                program = jax.jit(exported.call)
            except Exception as err:  # a program jax.export cannot serialize: traced in this process as before
                warnings.warn(f"ratingflow.exported: {key}: {type(err).__name__}: {err}; using jax.jit")
                program = plain
            loaded[signature] = program
        return program(*args)

    return call


#: seconds a process waits for another one making the same program before it makes the program itself
LOCK_WAIT = 600.0


@contextlib.contextmanager
def _making(folder: Path | None, signature: str):
    """Held while this process makes one program (``signature``: its key and argument shapes): an exclusive lock
    (``flock``) on a file of its own next to the traced programs. Another process that needs the same program waits
    for it, then finds it in the caches (the traced program's file and JAX's compilation cache, both written before the
    lock is released) and loads it instead of making it a second time. In a cold run of the benchmark the first two
    fits reached the importance sampler's program 3 s apart, and both compiled it (17 and 23 s; docs/time_budget.md,
    twenty-third session). The kernel releases the lock when its process ends, killed or not. Without a persistent
    cache, where the filesystem refuses the lock, or after :data:`LOCK_WAIT` seconds, the process goes on without
    it (the program is then made twice, as before)."""
    try:
        import fcntl
    except ImportError:  # not a Unix system
        fcntl = None
    if folder is None or fcntl is None:
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{_file_name(signature)}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # held by another process: it is making this program
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            except OSError:  # a filesystem without locks
                break
        yield
    finally:
        os.close(fd)  # and with it the lock


def _file_name(signature: str) -> str:
    """The name of a program's files (traced program, lock): its signature with the code's version, hashed."""
    return hashlib.sha256(f"{_code_version()}|{signature}".encode()).hexdigest()


def _load_or_export(folder: Path, signature: str, plain, specs):
    path = folder / f"{_file_name(signature)}.jaxexport"
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # missing, or unreadable (a partial copy): export it again
        pass
    blob = jax.export.export(plain)(*specs).serialize()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # another job may write the same program
    with os.fdopen(fd, "wb") as sink:
        sink.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return jax.export.deserialize(bytearray(blob))

"""What a function lowers to: the loops of its program, with NumPyro's ``Predictive`` as it is or looping over draws."""
import contextlib

import jax


@contextlib.contextmanager
def numpyro_default_loop():
    """Inside: every ``numpyro.infer.Predictive`` draws one draw after the other (``parallel=False``, NumPyro's
    default), whatever its caller asks."""
    import numpyro.infer

    original = numpyro.infer.Predictive
    numpyro.infer.Predictive = lambda *a, **k: original(*a, **{**k, "parallel": False})
    try:
        yield
    finally:
        numpyro.infer.Predictive = original


def lowered_loops(fn, args) -> int:
    """How many loops (``stablehlo.while``) ``jax.jit(fn)`` lowers to for ``args``; traced anew each time (a new
    function: ``jax.jit`` keeps the trace of a function it has seen)."""
    return jax.jit(lambda *a: fn(*a)).lower(*args).as_text().count("stablehlo.while")

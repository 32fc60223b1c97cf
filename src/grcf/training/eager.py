"""torch.optim without the compiler stack: the import it does on first use costs a job ~2 s.

Kept apart from the training loop because it leans on how torch.optim wraps its methods.
"""

from __future__ import annotations

import inspect
import sys

import torch

_EAGER: dict = {}


def eager_optimizer(cls):
    """`cls` (a torch.optim class) without the lazy import of the compiler stack.

    torch.optim wraps `step` (and add_param_group, zero_grad, state_dict, load_state_dict) in
    helpers that import torch._dynamo on the first call, to cooperate with torch.compile: about
    as long as `import torch` itself, paid again by every training job, for a compiler this
    loop never uses. The subclass runs the same undecorated `step` under no_grad (what the
    decorator does outside torch.compile; same arithmetic, tests/test_resume.py checks runs
    stay bit-identical) and marks the other methods as already "disabled" through the cache
    attribute torch._compile._disable_dynamo reads. Only while nothing has imported
    torch._dynamo, so a process that uses torch.compile keeps torch's own classes; if a torch
    release changes these helpers, the class is returned as is and jobs are merely slower
    (tests/test_startup.py notices).
    """
    if "torch._dynamo" in sys.modules:
        return cls
    if cls not in _EAGER:
        raw = inspect.unwrap(cls.step)
        if getattr(cls.step, "__wrapped__", None) is None or raw.__qualname__ not in (f"{c.__name__}.step" for c in cls.__mro__):
            return cls
        for member in vars(torch.optim.Optimizer).values():
            fn, code = getattr(member, "__wrapped__", None), getattr(member, "__code__", None)
            if fn is not None and code is not None and code.co_qualname == "_disable_dynamo.<locals>.inner":
                if getattr(fn, "__dynamo_disable", None) is None:
                    setattr(fn, "__dynamo_disable", fn)

        @torch.no_grad()
        def step(self, closure=None):
            return raw(self, closure)

        _EAGER[cls] = type(cls.__name__, (cls,), {"step": step, "__module__": __name__})
    return _EAGER[cls]

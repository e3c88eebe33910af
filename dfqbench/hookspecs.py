"""Hook specifications: what a ``dfqbench`` plugin may contribute.

Each hook returns a list of descriptions (see :mod:`dfqbench.api`); a plugin implements
only the hooks it needs, decorated with :data:`dfqbench.api.hookimpl`.
"""

from __future__ import annotations

import pluggy

from dfqbench.api import DatasetInfo, MethodInfo, ModelInfo, SuiteInfo

hookspec = pluggy.HookspecMarker("dfqbench")


@hookspec
def dfqbench_methods() -> list[MethodInfo]:
    """Quantization methods (and baselines) this plugin adds."""


@hookspec
def dfqbench_models() -> list[ModelInfo]:
    """Model architectures with pretrained weights this plugin adds."""


@hookspec
def dfqbench_datasets() -> list[DatasetInfo]:
    """Data sets this plugin adds."""


@hookspec
def dfqbench_suites() -> list[SuiteInfo]:
    """Benchmark suites (dataset × model matrices) this plugin adds."""

"""Published numbers: one CSV per paper, shipped as package data, shown beside ours.

A suite names its files in :attr:`dfqbench.api.SuiteInfo.published` as
``"package:relative/path.csv"``. Lines starting with ``#`` cite the source. Columns:

``dataset, model, w_bits, a_bits``
    the entry, in dfqbench names (``cifar10``, ``resnet20``, 4, 4);
``method``
    the dfqbench method name (``gdfq``); methods without a dfqbench plugin keep a short
    name of their own (``intraq``) and appear only in the compare view;
``label``
    the method as the paper writes it (``ARC+AIT``);
``top1, top1_std``
    published top-1 (%) and its ± where the paper gives one (else empty);
``fp_top1``
    the FP teacher's top-1 as published;
``rerun``
    ``true`` where the citing paper re-ran the method itself (its † marker);
``source``
    a short citation shown in tables (``AdaDFQ CVPR'23 Tab. 2``).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence

import pandas as pd

from dfqbench.errors import DfqError

COLUMNS = ["dataset", "model", "w_bits", "a_bits", "method", "label", "top1", "top1_std", "fp_top1", "rerun", "source"]
#: what identifies one published entry (and joins it to one of our table entries)
ENTRY = ["dataset", "model", "w_bits", "a_bits", "method"]
_TYPES = {"w_bits": "int64", "a_bits": "int64", "top1": "float64", "top1_std": "float64", "fp_top1": "float64", "rerun": "bool"}


def read(ref: str) -> pd.DataFrame:
    """The published entries of one ``"package:relative/path.csv"`` file."""
    package, _, relative = ref.partition(":")
    try:
        with importlib.resources.files(package).joinpath(relative).open(encoding="utf-8") as f:
            table = pd.read_csv(f, comment="#", skipinitialspace=True)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DfqError(f"published numbers {ref!r} not found ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DfqError(f"published numbers {ref!r} lack the column(s) {', '.join(missing)}; valid columns: {', '.join(COLUMNS)}")
    table = table[COLUMNS].astype(_TYPES)
    duplicated = table[table.duplicated(ENTRY)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise DfqError(f"published numbers {ref!r} list {first['method']} {first['dataset']}/{first['model']} "
                       f"{first['w_bits']}w{first['a_bits']}a twice")
    return table


def load(refs: Sequence[str]) -> pd.DataFrame:
    """Every published entry of the files ``refs``, in priority order (``priority`` 0 first)."""
    frames = [read(ref).assign(priority=i) for i, ref in enumerate(refs)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=_TYPES.get(c, "object")) for c in COLUMNS}).assign(priority=pd.Series(dtype="int64"))
    return pd.concat(frames, ignore_index=True)


def primary(published: pd.DataFrame) -> pd.DataFrame:
    """One published value per entry: the one from the highest-priority source."""
    return published.sort_values("priority", kind="stable").drop_duplicates(ENTRY, keep="first")

"""The ``dfqbench`` command line: run / list / table.

Every error a user can cause is one line on stderr and exit code 2; Ctrl-C keeps every
completed cell, writes the tables and exits with 130 (SIGTERM the same, with 143). Heavy
modules (torch) are imported inside the commands that need them, so ``dfqbench list`` stays
instant.
"""

from __future__ import annotations

import reprlib
import signal
import sys
from pathlib import Path

import click

import dfqbench
from dfqbench.errors import DfqError, unknown, writing_tables
from dfqbench.registry import Registry, load_registry

LIST_KINDS = ("methods", "models", "datasets", "suites", "plugins")


#: numpy's seeds are 32-bit
MAX_SEED = 2**32 - 1


class Folder(click.Path):
    """A folder option; an empty value is refused, where ``Path("")`` would quietly be the
    current folder (``--results ""`` writing records and tables beside the user's files)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path; valid: a folder", param, ctx)
        return super().convert(value, param, ctx)


class WorkerCount(click.ParamType):
    """``--jobs``: a count of worker processes, refused in the words of every other option."""

    name = "integer"

    def convert(self, value, param, ctx):
        text = str(value).strip()
        try:
            count = int(text) if text.isascii() and text.lstrip("-").isdigit() else 0
        except ValueError:  # more digits than int() converts
            count = 0
        if count < 1:
            shown = text if text.lstrip("-").isdigit() and len(text) <= 20 else reprlib.repr(text)
            raise DfqError(f"--jobs {shown} is not a number of worker processes; valid choices: 1 or more")
        return count


def _split(text: str, option: str, valid: str) -> list[str]:
    """A comma list without empty entries or repeats (``--methods noise,noise`` is noise once)."""
    tokens = [t.strip() for t in text.split(",")]
    if not all(tokens):
        raise DfqError(f"bad --{option} {text!r}: an empty entry; valid: {valid}")
    return list(dict.fromkeys(tokens))


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a comma list of seeds, repeats dropped (also used by the bench scripts)."""
    valid = f"integers from 0 to {MAX_SEED}, such as 0,1,2"
    seeds = []
    for token in _split(text, "seeds", valid):
        if not (token.isascii() and token.isdigit() and len(token.lstrip("0")) <= len(str(MAX_SEED)) and int(token) <= MAX_SEED):
            raise DfqError(f"bad --seeds entry {reprlib.repr(token)}; valid: {valid}")
        seeds.append(int(token))
    return list(dict.fromkeys(seeds))  # 0 and 00 are one seed


def _usable_cache(given: Path | None, create: bool) -> Path:
    """The cache folder (``--cache-dir``, else the environment's), checked before any work:
    a file in its place, or a folder that cannot be made or written, is one error here
    rather than a failed record per cell."""
    from dfqbench.files import probe_folder
    from dfqbench.zoo import default_cache_dir

    cache = given if given is not None else default_cache_dir()
    source = "--cache-dir" if given is not None else "the cache folder (DFQBENCH_CACHE, XDG_CACHE_HOME or ~/.cache)"
    try:
        existing = next(p for p in (cache, *cache.parents) if p.exists())
        if not existing.is_dir():
            raise DfqError(f"{source} {cache}: {existing} is a file; valid: a folder (created if missing)")
        if create:
            cache.mkdir(parents=True, exist_ok=True)
            probe_folder(cache)
    except OSError as exc:  # e.g. a parent folder this user may not read
        raise DfqError(f"{source} {cache}: {exc.strerror or exc}; valid: a writable folder (created if missing)") from None
    return cache


def _parse_weights(items: tuple[str, ...], reg: Registry) -> dict[str, Path]:
    out = {}
    for item in items:
        model, eq, path = item.partition("=")
        if not (eq and model and path):
            raise DfqError(f"bad --weights {item!r}; valid form: MODEL=PATH")
        reg.model(model)
        file = Path(path).expanduser()
        if model in out and out[model] != file:
            raise DfqError(f"--weights {model} given twice ({out[model]}, {file}); valid: one file per model")
        out[model] = file
        if file.is_dir():
            raise DfqError(f"--weights {model}={path} is a folder; valid: the weights file itself")
        if not file.is_file():
            raise DfqError(f"--weights {model}={path}: no such file")
    return out


def _published(reg: Registry, suite: str):
    """The suite's published numbers (an empty table for a suite without, or not installed)."""
    from dfqbench import published

    entry = reg.suites.get(suite)
    return published.load(entry.info.published if entry else ())


def _warn_problems(reg: Registry, echo) -> None:
    for problem in reg.problems:
        echo(f"warning: {problem}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(dfqbench.__version__, prog_name="dfqbench")
def cli() -> None:
    """Benchmark data-free quantization methods on one harness, one quantizer, one protocol."""


@cli.command()
@click.option("--suite", default="digits", show_default=True, help="Benchmark suite (see `dfqbench list suites`).")
@click.option("--methods", default="all", show_default=True, help="`all` or a comma list of method names.")
@click.option("--models", default=None, help="Comma list of models of the suite [default: all of them].")
@click.option("--bits", default=None, help="Comma list: `3,4,5` = W3A3,W4A4,W5A5; `4w8a` = W4A8 [default: the suite's].")
@click.option("--seeds", default="0", show_default=True, help="Comma list of seeds; several give mean ± std.")
@click.option("--budget", default="default", show_default=True, help="paper: the method's published schedule | default: a reduced one, minutes per cell on a CPU for digits | smoke: a few steps.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--results", default="results", show_default=True, type=Folder(), help="Results folder.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Skip cells that already have an ok record.")
@click.option("--quantizer", default="auto", show_default=True, help="Quantizer convention (auto: the family's default).")
@click.option("--set", "assignments", multiple=True, metavar="TARGET.FIELD=VALUE", help="Override a method, quantizer or data field; repeatable.")
@click.option("--data-root", default=None, type=Folder(), help="Folder holding real data sets (CIFAR, ImageNet).")
@click.option("--download", is_flag=True, help="Fetch missing data sets (CIFAR) into --data-root (or the cache).")
@click.option("--weights", multiple=True, metavar="MODEL=PATH", help="Local pretrained weights for a model; repeatable.")
@click.option("--cache-dir", default=None, type=Folder(), help="Cache for trained/downloaded weights.")
@click.option("--jobs", default=1, show_default=True, type=WorkerCount(),
              help="Worker processes running cells side by side: one GPU each (round-robin) with --device cuda, "
              "a share of the CPU threads each on the CPU; with --executor slurm, at most N jobs at once.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "slurm", "ray"]),
              help="Where cells run: this machine, or one Slurm job (submitit) / Ray task per (model, seed, method).")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="A job parameter: submitit's for slurm (timeout_min=2880, gpus_per_node=1, slurm_partition=gpu), "
              "ray.remote's for ray (num_gpus=1, num_cpus=4); repeatable.")
@click.option("--precision", "precision_", default="fp32", show_default=True,
              help="fp32 | bf16: the methods' passes under bfloat16 autocast, a recorded deviation (fake quantization, "
              "BN statistics, PSAQ-ViT's entropy, generators, ZeroQ's distillation and evaluation stay fp32).")
@click.option("--channels-last", is_flag=True, help="Teacher and quantized model in channels_last layout (a speed setting: not part of the key).")
@click.option("--joint/--no-joint", default=True, show_default=True,
              help="Train the bit-widths of one model and seed together where the method's generator never sees the quantized "
              "model (GDFQ, Qimera, Real-KD): one generator, the records of separate runs, the time shared; --no-joint: each cell alone.")
@click.option("--dry-run", is_flag=True, help="Print the cells that would run (after --resume) and run nothing.")
def run(suite, methods, models, bits, seeds, budget, device, results, resume, quantizer, assignments, data_root, download, weights, cache_dir, jobs,
        executor, executor_options, precision_, channels_last, joint, dry_run):
    """Run a benchmark matrix and write records and tables."""
    from rich.console import Console

    from dfqbench import overrides, precision, tables
    from dfqbench.bits import parse_bits
    from dfqbench.executor import WorkerSpec, pending, run_local, run_parallel
    from dfqbench.plan import describe_cells, make_plan
    from dfqbench.progress import Display
    from dfqbench.records import RecordStore
    from dfqbench.seeding import describe_device, make_deterministic, resolve_device
    from dfqbench.session import Session
    from dfqbench.zoo import ZooEnv

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    reg = load_registry()
    suite_info = reg.suite(suite).info
    suite_models = [m for _, m in suite_info.rows]
    valid_methods = "all, or a comma list of " + ", ".join(sorted(reg.methods))
    method_names = list(reg.methods) if methods.strip() == "all" else _split(methods, "methods", valid_methods)
    if "all" in method_names:
        raise DfqError(f"bad --methods {methods!r}: 'all' stands alone; valid: {valid_methods}")
    for name in method_names:
        reg.method(name)
    plan = make_plan(
        reg,
        suite,
        method_names,
        _split(models, "models", ", ".join(suite_models)) if models is not None else None,
        parse_bits(bits if bits is not None else ",".join(suite_info.bits)),
        parse_seeds(seeds),
        budget,
        quantizer,
        overrides.parse(assignments),
        precision_,
        channels_last,
    )
    if not plan.cells:
        raise DfqError(f"no cell to run: {'; '.join(plan.skipped)}")
    cache_dir = _usable_cache(cache_dir, create=not dry_run)
    local_weights = _parse_weights(weights, reg)
    options = _executor_options(executor, executor_options, device, jobs)
    # a Slurm job or Ray task resolves the device on its own node; this process only plans and tabulates
    torch_device = resolve_device(device if executor == "local" else "cpu")
    if executor == "local":
        precision.check(precision_, torch_device)
    store = RecordStore(results / suite / "records.jsonl")
    store.check_writable(create=not dry_run)
    tables.check_writable(store.path.parent)
    store.read()  # a corrupt line stops us here, before any work

    import torch

    where = describe_device(torch_device) if executor == "local" else f"{device} in {executor} jobs"
    console.print(f"dfqbench {dfqbench.__version__} · torch {torch.__version__} · device {where}")
    console.print("plugins: " + " · ".join(f"{p.name} ({p.distribution} {p.version})" for p in reg.plugins))
    _warn_problems(reg, lambda text: console.print(f"[yellow]{text}[/yellow]"))
    for why in plan.skipped:
        console.print(f"note: skipped {why}")
    for model in sorted(set(local_weights) - {cell.model for cell in plan.cells}):
        console.print(f"note: --weights {model}=… is for a model this run does not use")
    if dry_run:
        # nothing is loaded, so a record made with other teacher weights still counts as done here
        todo, outcome = pending(plan.cells, store, resume, registry=reg)
        outcome.announce(console, len(todo), "; dry run: nothing runs")
        if todo:
            click.echo(describe_cells(todo))
        return
    make_deterministic(torch_device)
    display = Display(console)
    zoo = ZooEnv(cache_dir=cache_dir, data_root=data_root, weights=local_weights, display=display, download=download)
    session = Session(reg, torch_device, zoo, display, joint=joint)
    terminated: list[int] = []

    def terminate(signum, frame) -> None:
        # SIGTERM (a scheduler's preemption or time limit, `kill`) stops a run like Ctrl-C; the
        # flag, not the exception's type, tells them apart (Ray's wait re-raises a plain one)
        terminated.append(signum)
        raise KeyboardInterrupt

    interrupted = 0
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if executor != "local":
            from dfqbench.raycluster import run_ray
            from dfqbench.slurm import run_slurm

            spec = WorkerSpec(device.strip().lower(), None, store.path.resolve(), zoo.cache_dir.resolve(), data_root and data_root.resolve(),
                              {m: p.resolve() for m, p in local_weights.items()}, download, joint)
            outcome = (run_slurm if executor == "slurm" else run_ray)(plan.cells, session, store, resume, display, spec, options)
        elif jobs == 1:
            outcome = run_local(plan.cells, session, store, resume, display)
        else:
            spec = WorkerSpec(str(torch_device), None, store.path, zoo.cache_dir, data_root, local_weights, download, joint)
            outcome = run_parallel(plan.cells, session, store, resume, display, jobs, spec)
    except KeyboardInterrupt:
        interrupted = 143 if terminated else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    records = store.read()
    if records:
        paths, text = tables.write(records, store.path.parent, _published(reg, suite))
        click.echo(text)
        console.print(f"records: {store.path} · tables: {', '.join(map(str, paths))}")
    if interrupted:
        console.print("interrupted: completed cells are kept; run the same command again to resume")
        sys.exit(interrupted)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.statuses.items())) or "nothing to run"
    console.print(f"done: {counts}; {outcome.skipped} skipped (already ok)")
    if outcome.lost:
        console.print(f"{outcome.lost} cells have no record (the jobs or worker processes that ran them died); run the same command again to retry them")
    if outcome.statuses.get("failed"):
        # a method that raised (a bug, or a --set value it cannot take), unlike a divergence, which is a result
        console.print(f"{outcome.statuses['failed']} cells failed: `dfqbench show --results {results}` lists them with their errors")
    if outcome.lost or outcome.statuses.get("failed"):
        sys.exit(1)


def _executor_options(executor: str, items: tuple[str, ...], device: str, jobs: int) -> dict[str, object]:
    """The job parameters of a cluster executor, checked before anything runs."""
    if executor == "local":
        if items:
            raise DfqError("--executor-option sets a Slurm job or Ray task parameter; it needs --executor slurm or ray")
        return {}
    if device.strip().lower() not in ("auto", "cpu", "cuda"):
        raise DfqError(f"--device {device} with --executor {executor}; valid choices: auto, cpu, cuda (a job uses the GPU it is given)")
    if executor == "ray":
        from dfqbench.raycluster import parse_parameters

        if jobs > 1:
            raise DfqError("--jobs caps local workers and Slurm jobs; Ray runs as many tasks as the cluster's resources allow")
        return parse_parameters(items)
    from dfqbench.slurm import parse_parameters

    options = parse_parameters(items)
    if jobs > 1:
        options.setdefault("slurm_array_parallelism", jobs)
    return options


@cli.command(name="list")
@click.argument("kind", required=False)
def list_(kind):
    """List methods, models, datasets, suites or plugins, with the distribution of each."""
    if kind is not None and kind not in LIST_KINDS:
        raise unknown("list kind", kind, LIST_KINDS)
    reg = load_registry()
    for section in [kind] if kind else LIST_KINDS:
        click.echo(f"{section}:")
        if section == "plugins":
            rows = [(p.name, p.module, f"{p.distribution} {p.version}") for p in reg.plugins]
        else:
            rows = [(name, _describe(section, e.info), f"{e.plugin.distribution} {e.plugin.version}") for name, e in getattr(reg, section).items()]
        width = max((len(r[0]) for r in rows), default=0)
        for name, text, source in rows:
            click.echo(f"  {name.ljust(width)}  {text}  [{source}]")
    _warn_problems(reg, lambda text: click.echo(text, err=True))


def _describe(section: str, info) -> str:
    if section == "methods":
        flag = "" if info.data_free else ", NOT data-free (reference)"
        return f"{info.display_name} — {info.paper} ({'/'.join(info.families)}{flag})"
    if section == "models":
        return f"{info.display_name} ({info.family})"
    if section == "datasets":
        c, h, w = info.input_shape
        return f"{info.display_name} ({info.num_classes} classes, {c}×{h}×{w})"
    rows = ", ".join(f"{d}/{m}" for d, m in info.rows)
    return f"{info.description} [{rows}; bits {','.join(info.bits)}]"


@cli.command()
@click.option("--results", default="results", show_default=True, type=Folder(), help="Results folder.")
@click.option("--suite", default=None, help="Suite to tabulate [default: every suite with records].")
@click.option(
    "--compare",
    type=click.Choice(["published"]),
    default=None,
    help="Also write compare.csv/compare.md: ours vs every published number, entry by entry.",
)
@click.option(
    "--versus",
    metavar="METHOD",
    multiple=True,
    help="Also write versus-METHOD.csv/.md/.tex: every method's top-1 minus METHOD's, seed by seed, with the mean difference's 95% confidence interval (e.g. `--versus noise`); repeatable.",
)
def table(results, suite, compare, versus):
    """Regenerate table.csv, table.md and table.tex (and compare.*, versus-*) from the stored records."""
    from dfqbench import tables
    from dfqbench import versus as versus_
    from dfqbench.records import RecordStore

    if results.exists() and not results.is_dir():
        raise DfqError(f"--results {results} is a file; valid: the folder `dfqbench run --results` wrote")
    available = sorted(p.parent.name for p in results.glob("*/records.jsonl") if p.stat().st_size)
    if suite is not None and suite not in available:  # a name, not a path out of the results folder
        raise unknown("suite", suite, available, f" with records under {results}")
    suites = [suite] if suite is not None else available
    if not suites:
        raise DfqError(f"no records under {results}/<suite>/records.jsonl; run `dfqbench run` first")
    reg = load_registry()
    stores = {name: RecordStore(results / name / "records.jsonl") for name in suites}
    records = {name: store.read() for name, store in stores.items()}
    for name, store in stores.items():
        if not records[name]:
            raise DfqError(f"no records in {store.path}; valid suites here: {', '.join(available) or '(none)'}")
    published = {name: _published(reg, name) for name in suites}
    methods = {name: versus_.methods(records[name]) if versus else [] for name in suites}
    for baseline in versus:
        _honoured_somewhere(suites, lambda n, b=baseline: b in methods[n] or f"no {b!r} records in {stores[n].path}; methods there: {', '.join(methods[n])}")
    if compare is not None:
        with_numbers = sorted(n for n, e in reg.suites.items() if e.info.published)
        _honoured_somewhere(suites, lambda n: not published[n].empty or f"suite {n!r} has no published numbers; suites with published numbers: {', '.join(with_numbers)}")
    for name, store in stores.items():
        out_dir = store.path.parent
        _, text = tables.write(records[name], out_dir, published[name])
        click.echo(text)
        for baseline in (b for b in versus if b in methods[name]):
            paths, text = versus_.write(records[name], out_dir, baseline)
            click.echo(text)
            click.echo(f"versus {baseline}: {', '.join(map(str, paths))}", err=True)
        if compare is not None and not published[name].empty:
            csv_path, md_path, text = tables.write_compare(records[name], out_dir, published[name])
            click.echo(text)
            click.echo(f"compare: {csv_path}, {md_path}", err=True)


def _honoured_somewhere(suites: list[str], check) -> None:
    """``check(suite)`` is True, or why the suite cannot honour an option. An option that no
    suite can honour is bad input; a suite that cannot, beside others that can, gets a note."""
    reasons = [r for r in map(check, suites) if r is not True]
    if reasons and len(reasons) == len(suites):
        raise DfqError(reasons[0])
    for reason in reasons:
        click.echo(f"note: {reason}", err=True)


@cli.command()
@click.argument("key", required=False)
@click.option("--results", default="results", show_default=True, type=Folder(), help="Results folder.")
@click.option("--suite", default=None, help="Suite [default: every suite with records].")
@click.option("--method", default=None, help="Only cells of this method.")
@click.option("--model", default=None, help="Only cells of this model.")
@click.option("--bits", default=None, help="Only cells at this bit setting (`4` = W4A4, `4w8a`).")
@click.option("--seed", default=None, type=int, help="Only cells with this seed.")
@click.option("--budget", default=None, help="Only cells with this budget.")
@click.option("--precision", default=None, help="Only cells with this precision.")
def show(key, results, suite, method, model, bits, seed, budget, precision):
    """One cell in full: settings, outcome, error and the history of every metric its method
    logged. KEY is a cell key or its first characters; with several matching cells, lists them."""
    from dfqbench import show as show_
    from dfqbench.bits import parse_bits
    from dfqbench.records import RecordStore

    if key is not None and not key.strip():
        raise DfqError("an empty KEY; valid: a cell key or its first characters (`dfqbench show` lists the cells)")
    selected_bits = None
    if bits is not None:
        parsed = parse_bits(bits)
        if len(parsed) != 1:
            raise DfqError(f"--bits {bits} names {len(parsed)} settings; valid: one, such as 4 or 4w8a")
        selected_bits = parsed[0]
    suites = sorted(path.parent.name for path in results.glob("*/records.jsonl"))
    if not suites:
        raise DfqError(f"no records under {results}; run `dfqbench run` first")
    if suite is not None and suite not in suites:
        raise unknown("suite", suite, suites, f" with records under {results}")
    stores = [RecordStore(results / name / "records.jsonl") for name in ([suite] if suite else suites)]
    fields = dict(method=method, model=model, seed=seed, budget=budget, precision=precision)
    read = [(store, store.read()) for store in stores]
    matches = [(store, r) for store, records in read for r in show_.select(records, key, selected_bits, **fields)]
    if not matches:
        raise DfqError(show_.nothing_matches([r for _, records in read for r in records], key, selected_bits, fields, results))
    counted = {key for _, records in read for key in show_.tabled(records)}
    if len(matches) == 1:
        store, record = matches[0]
        try:
            history = store.history(record)
        except DfqError as exc:  # the record itself is intact: show it, and say what is wrong with its log
            history = {}
            click.echo(f"note: {exc}", err=True)
        click.echo(show_.details(record, history, record["key"] in counted))
        return
    click.echo(show_.listing([r for _, r in matches], counted))
    click.echo(f"{len(matches)} cells match: name one by its key (or its first characters) or narrow the options", err=True)


@cli.command(name="leaderboard")
@click.option("--results", default="results", show_default=True, type=Folder(), help="Results folder.")
def leaderboard_(results):
    """Rank the methods over every suite's records; writes leaderboard.md in the results folder."""
    from dfqbench import leaderboard
    from dfqbench.files import write_whole
    from dfqbench.records import RecordStore

    paths = sorted(results.glob("*/records.jsonl"))
    records = [r for path in paths for r in RecordStore(path).read()]
    if not records:
        raise DfqError(f"no records under {results}/<suite>/records.jsonl; run `dfqbench run` first")
    text = leaderboard.markdown(leaderboard.leaderboard(records))
    with writing_tables():
        write_whole(results / "leaderboard.md", text)
    click.echo(text)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="dfqbench", standalone_mode=False)
    except DfqError as exc:
        _fail(str(exc), 2)
    except click.exceptions.Abort:
        click.echo("dfqbench: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except OSError as exc:
        if not exc.filename:  # not about a path the user gave: a bug or the machine's trouble, with its traceback
            raise
        _fail(f"{exc.strerror or exc}: {exc.filename}", 2)  # the file system refusing a path (e.g. a name too long)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


def _fail(message: str, code: int) -> None:
    # One line whatever a value holds: a newline in a path or a --method would split it
    one_line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    click.echo(f"dfqbench: error: {one_line}", err=True)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()

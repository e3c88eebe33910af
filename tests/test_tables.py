"""Tables in the paper's layout, computed from hand-made records."""

import pandas as pd
import pytest

from dfqbench import tables


def record(method, seed, top1, status="ok", bits=4, data_free=True, year=2020, budget="default", label=None):
    return {
        "key": f"{method}-{seed}-{bits}-{budget}",
        "status": status,
        "cell": {"suite": "digits", "dataset": "digits", "model": "r20", "method": method, "w_bits": bits, "a_bits": bits,
                 "seed": seed, "budget": budget, "quantizer": {"name": "gdfq"}, "config": {}},
        "top1": top1 if status == "ok" else None,
        "top5": 99.0 if status == "ok" else None,
        "fp_top1": 98.5,
        "wall_time_s": 10.0 + seed,
        "labels": {"method": label or method.upper(), "model": "ResNet-20", "dataset": "Digits", "data_free": data_free, "year": year},
        "versions": {"dfqbench": "0.1.0"},
    }


RECORDS = [
    record("gdfq", 0, 90.0), record("gdfq", 1, 92.0), record("gdfq", 2, 94.0),
    record("zeroq", 0, 80.0), record("zeroq", 1, 0, status="diverged"),
    record("qimera", 0, 0, status="failed"), record("qimera", 1, 0, status="failed"),
    record("real", 0, 99.0, data_free=False, label="Real-calib"),
    record("noise", 0, 70.0, year=0, label="Noise"),
]


def test_summary_mean_std_over_seeds():
    s = tables.summarize(tables.frame(RECORDS)).set_index("method")
    assert s.loc["gdfq", "top1_mean"] == 92.0
    assert s.loc["gdfq", "top1_std"] == 2.0  # sample std of 90, 92, 94
    assert s.loc["gdfq", "n_ok"] == 3 and s.loc["gdfq", "seeds"] == "0,1,2"
    assert s.loc["zeroq", "n_ok"] == 1 and s.loc["zeroq", "failures"] == "diverged"
    assert s.loc["gdfq", "wall_s"] == 10 + 11 + 12 and s.loc["zeroq", "wall_s"] == 10 + 11  # failed cells cost time too
    assert pd.isna(s.loc["qimera", "top1_mean"])


def test_markdown_layout_bold_failures_and_reference_marker():
    text = tables.markdown(tables.summarize(tables.frame(RECORDS)))
    assert text.startswith("### Suite `digits` · budget `default` · quantizer `gdfq` · seeds 0, 1, 2 · dfqbench 0.1.0")
    header = next(l for l in text.splitlines() if l.startswith("| Dataset"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["Dataset", "Model (FP top-1)", "Bits", "Noise", "GDFQ", "QIMERA", "ZEROQ", "Real-calib†"]
    row = next(l for l in text.splitlines() if l.startswith("| Digits"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["Digits", "ResNet-20 (98.50)", "4w4a"]
    assert cells[3:] == ["70.00", "**92.00 ± 2.00**", "failed", "80.00 (1/2 ok; diverged)", "99.00"]  # reference never bold
    assert "† not data-free" in text


def test_latex_is_the_same_table_escaped_with_the_best_in_bold(tmp_path):
    latex = tables.latex(tables.summarize(tables.frame(RECORDS)))
    lines = latex.splitlines()
    assert lines[0] == r"\begin{table}" and lines[-1] == r"\end{table}"
    assert lines[1].startswith(r"\caption{Suite \texttt{digits} $\cdot$ budget \texttt{default} $\cdot$ quantizer \texttt{gdfq}")
    assert r"Top-1 (\%) on the validation split" in lines[1] and r"$^\dagger$ not data-free" in lines[1]
    assert lines[2] == r"\begin{tabular}{lllccccc}"
    assert lines[4] == r"Dataset & Model (FP top-1) & Bits & Noise & GDFQ & QIMERA & ZEROQ & Real-calib$^\dagger$ \\"
    assert lines[6] == (r"Digits & ResNet-20 (98.50) & 4w4a & 70.00 & \textbf{92.00 $\pm$ 2.00} & failed & 80.00 (1/2 ok; diverged) & 99.00 \\")
    paths, _ = tables.write(RECORDS, tmp_path)
    assert [p.name for p in paths] == ["table.csv", "table.md", "table.tex"] and paths[2].read_text() == latex


def test_latex_escapes_what_tex_cannot_take():
    assert tables._tex("a_b 50% #1 & {x} $ ~ ^ \\ − – ± † `q_s`") == (
        r"a\_b 50\% \#1 \& \{x\} \$ \textasciitilde{} \textasciicircum{} \textbackslash{} $-$ -- $\pm$ $^\dagger$ \texttt{q\_s}")


def test_bit_settings_ascend_within_a_model_whatever_order_they_ran_in():
    def bits(text):
        return [[c.strip() for c in l.strip("|").split("|")][2] for l in text.splitlines() if l.startswith("| Digits")]

    mixed = record("gdfq", 0, 95.0, bits=2)
    mixed["cell"]["a_bits"], mixed["key"] = 8, "gdfq-0-2w8a"
    recs = [record("gdfq", 0, 92.0, bits=4), record("gdfq", 0, 96.0, bits=5), mixed, record("gdfq", 0, 80.0, bits=3)]
    other = record("gdfq", 0, 85.0, bits=3)
    other["cell"]["model"], other["key"] = "mv2", "mv2-gdfq-0-3"
    text = tables.markdown(tables.summarize(tables.frame([other, *recs])))
    assert bits(text) == ["3w3a", "2w8a", "3w3a", "4w4a", "5w5a"]  # mv2 ran first and stays first


def test_budgets_never_share_a_table():
    recs = RECORDS + [record("gdfq", 0, 50.0, budget="smoke")]
    text = tables.markdown(tables.summarize(tables.frame(recs)))
    assert text.count("### Suite") == 2 and "budget `smoke`" in text


def test_latest_record_of_a_key_wins():
    newer = record("gdfq", 0, 10.0)
    s = tables.summarize(tables.frame(RECORDS + [newer])).set_index("method")
    assert s.loc["gdfq", "top1_mean"] == (10.0 + 92.0 + 94.0) / 3


def test_leaderboard_ranks_within_rows_and_skips_references():
    from dfqbench import leaderboard

    recs = RECORDS + [record("gdfq", 0, 60.0, bits=3), record("noise", 0, 65.0, bits=3, year=0, label="Noise")]
    board = leaderboard.leaderboard(recs).set_index("method")
    # 4w4a: GDFQ 92 > ZeroQ 80 > Noise 70 (Qimera failed, Real-calib is a reference); 3w3a: Noise 65 > GDFQ 60
    assert board.loc["gdfq", "rows"] == 2 and board.loc["gdfq", "mean_rank"] == 1.5 and board.loc["gdfq", "wins"] == 1
    assert board.loc["noise", "mean_rank"] == 2.0 and board.loc["zeroq", "mean_rank"] == 2.0
    assert "real" not in board.index and "qimera" not in board.index
    assert board.loc["gdfq", "mean_drop"] == ((98.5 - 92.0) + (98.5 - 60.0)) / 2
    text = leaderboard.markdown(leaderboard.leaderboard(recs))
    assert text.startswith("### Leaderboard · budget `default` · quantizer `gdfq`")


def test_set_variants_are_their_own_column_never_averaged_in():
    variant = record("gdfq", 0, 50.0)
    variant["key"] = "variant"
    variant["cell"] = {**variant["cell"], "config": {"lr_s": 0.01}, "overrides": {"gdfq": {"lr_s": 0.01}}}
    s = tables.summarize(tables.frame(RECORDS + [variant])).set_index("method")
    assert s.loc["gdfq", "top1_mean"] == 92.0 and s.loc["gdfq", "n_seeds"] == 3
    assert s.loc["gdfq[lr_s=0.01]", "top1_mean"] == 50.0
    header = next(l for l in tables.markdown(tables.summarize(tables.frame(RECORDS + [variant]))).splitlines() if l.startswith("| Dataset"))
    assert [c.strip() for c in header.strip("|").split("|")][4:6] == ["GDFQ", "GDFQ (lr_s=0.01)"]


def test_records_of_a_superseded_configuration_do_not_count():
    old = record("gdfq", 0, 10.0)
    old["key"] = "old-config"
    old["cell"] = {**old["cell"], "config": {"epochs": 1}}
    # the old-config record comes first in the file: the three current seeds win
    s = tables.summarize(tables.frame([old] + RECORDS)).set_index("method")
    assert s.loc["gdfq", "top1_mean"] == 92.0 and s.loc["gdfq", "n_seeds"] == 3


def test_data_overrides_get_their_own_table():
    other = record("gdfq", 0, 70.0)
    other["key"] = "pytorchcv-normalisation"
    other["cell"] = {**other["cell"], "data": {"normalization": "pytorchcv"}, "overrides": {"data": {"normalization": "pytorchcv"}}}
    text = tables.markdown(tables.summarize(tables.frame(RECORDS + [other])))
    assert text.count("### Suite") == 2 and "· data `normalization=pytorchcv`" in text


def test_a_model_whose_entries_come_from_different_teacher_weights_is_flagged():
    def made_with(rec, sha256):
        return {**rec, "teacher_sha256": sha256}

    one = [made_with(r, "a" * 64) for r in RECORDS]
    summary = tables.summarize(tables.frame(one))
    assert set(summary["teacher_sha256"]) == {"a" * 12}
    assert "Not comparable" not in tables.markdown(summary)
    legacy = one + [record("gdfq", 3, 91.0)]  # a record from before the digest: nothing to compare
    assert "Not comparable" not in tables.markdown(tables.summarize(tables.frame(legacy)))
    mixed = one[:-1] + [made_with(RECORDS[-1], "b" * 64)]  # noise rerun with another --weights file
    text = tables.markdown(tables.summarize(tables.frame(mixed)))
    assert f"Not comparable: the ResNet-20 entries were made with 2 different teacher weights (sha256 {'a' * 12}…, {'b' * 12}…)" in text


def versus_records():
    """Noise and three methods over seeds 0–2: GDFQ +20 in every seed, ZeroQ one seed that
    pairs (its seed 1 diverged, and its seed 2 ran with other teacher weights than noise's)."""
    def made_with(rec, sha256="a" * 64):
        return {**rec, "teacher_sha256": sha256}

    noise = [made_with(record("noise", s, 70.0 + 2 * s, year=0, label="Noise")) for s in range(3)]
    gdfq = [made_with(record("gdfq", s, 90.0 + 2 * s)) for s in range(3)]
    zeroq = [made_with(record("zeroq", 0, 80.0)), made_with(record("zeroq", 1, 0, status="diverged")), made_with(record("zeroq", 2, 99.0), "b" * 64)]
    real = [made_with(record("real", 0, 99.0, data_free=False, label="Real-calib"))]
    qimera = [made_with(record("qimera", s, 0, status="failed")) for s in range(2)]
    return noise + gdfq + zeroq + real + qimera


def test_versus_lists_each_seeds_difference_to_the_baseline(tmp_path):
    from dfqbench import versus

    recs = versus_records()
    summary = versus.summarize(tables.frame(recs), "noise").set_index("method")
    assert summary.loc["gdfq", "deltas"] == [20.0, 20.0, 20.0] and summary.loc["gdfq", "delta_mean"] == 20.0
    assert summary.loc["gdfq", "delta_std"] == 0.0 and summary.loc["gdfq", "delta_min"] == 20.0
    # seed 1 diverged, seed 2 was made with other teacher weights: only seed 0 pairs
    assert summary.loc["zeroq", "deltas"] == [10.0] and summary.loc["zeroq", "paired_seeds"] == "0"
    assert summary.loc["real", "deltas"] == [29.0]
    assert pd.isna(summary.loc["noise", "n_paired"])
    (csv_path, md_path, tex_path), text = versus.write(recs, tmp_path, "noise")
    assert md_path.read_text() == text and md_path.name == "versus-noise.md"
    assert r"\textbf{+20.00 [+20.0, +20.0] (+20.0, +20.0, +20.0)}" in tex_path.read_text()  # the same table, for a paper
    assert text.startswith("### Differences to Noise, seed by seed · Suite `digits` · budget `default` · quantizer `gdfq` · seeds 0, 1, 2")
    row = next(l for l in text.splitlines() if l.startswith("| Digits"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # noise: its own top-1 and its drop from FP (98.5 − 72); the reference is never bold
    # qimera failed in every seed: nothing to pair
    # one paired seed has no interval
    assert cells[3:] == ["72.00 ± 2.00 (−26.5)", "**+20.00 [+20.0, +20.0] (+20.0, +20.0, +20.0)**", "–", "+10.00 (+10.0; seed 0)", "+29.00 (+29.0)"]
    csv = pd.read_csv(csv_path).set_index("method")
    assert csv.loc["gdfq", "deltas"] == "20.0000,20.0000,20.0000" and csv.loc["zeroq", "n_paired"] == 1


def test_versus_gives_the_student_t_interval_of_the_mean_difference():
    """Differences 1, 2, 3: mean 2, sample std 1, so the 95% interval is 2 ± t(0.975, 2)/√3 with
    t(0.975, 2) = 4.3027 (a t table's two-sided 5% value for 2 degrees of freedom): it holds 0,
    and the seeds do not support the margin although each of them is above the baseline."""
    from dfqbench import versus

    noise = [record("noise", s, 70.0, year=0, label="Noise") for s in range(3)]
    method = [record("gdfq", s, 71.0 + s) for s in range(3)]
    summary = versus.summarize(tables.frame(noise + method), "noise").set_index("method")
    half = 4.3027 / 3**0.5
    assert summary.loc["gdfq", "delta_ci_low"] == pytest.approx(2 - half, abs=1e-4)
    assert summary.loc["gdfq", "delta_ci_high"] == pytest.approx(2 + half, abs=1e-4)
    text = tables.markdown(summary.reset_index(), versus.layout("noise", "Noise"))
    assert "**+2.00 [−0.5, +4.5] (+1.0, +2.0, +3.0)**" in text  # the row's largest mean: bold


def test_versus_leaves_out_tables_without_the_baseline(tmp_path):
    from dfqbench import versus

    smoke = record("gdfq", 0, 50.0, budget="smoke")
    summary = versus.summarize(tables.frame(versus_records() + [smoke]), "noise")
    assert set(summary["budget"]) == {"default"}
    assert versus.methods(versus_records()) == ["gdfq", "noise", "qimera", "real", "zeroq"]
    # a row where the baseline did not run: its entries have nothing to pair with
    three_bit = record("gdfq", 0, 60.0, bits=3)
    text = tables.markdown(versus.summarize(tables.frame(versus_records() + [three_bit]), "noise"), versus.layout("noise", "Noise"))
    row = next(line for line in text.splitlines() if "3w3a" in line)
    assert [c.strip() for c in row.strip("|").split("|")][3:5] == ["–", "–"]

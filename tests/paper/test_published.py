"""Published numbers as package data, beside ours in the table and in the compare view."""

import json

import pandas as pd
import pytest

from dfqbench import published, tables
from dfqbench.bits import parse_bits
from dfqbench.registry import load_registry

ADADFQ = "dfqbench_suites:published/adadfq_cvpr2023_table2.csv"


def record(method, label, seed, top1, dataset="cifar10", bits=4, status="ok", budget="paper", fp=93.5, year=2020):
    return {
        "key": f"{dataset}-{method}-{bits}-{seed}-{budget}",
        "status": status,
        "cell": {"suite": dataset, "dataset": dataset, "model": "resnet20", "method": method, "w_bits": bits, "a_bits": bits,
                 "seed": seed, "budget": budget, "quantizer": {"name": "gdfq"}, "config": {}, "data": {"normalization": "gdfq"}},
        "top1": top1 if status == "ok" else None,
        "top5": 99.0 if status == "ok" else None,
        "fp_top1": fp,
        "labels": {"method": label, "model": "ResNet-20", "dataset": {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[dataset],
                   "data_free": True, "year": year},
        "versions": {"dfqbench": "0.1.0"},
    }


CIFAR10 = [
    record("gdfq", "GDFQ", 0, 90.72), record("gdfq", "GDFQ", 1, 91.32),
    record("gdfq", "GDFQ", 0, 74.0, bits=3),
    record("noise", "Noise", 0, 50.0, year=0),
    record("adadfq", "AdaDFQ", 0, None, status="failed", year=2023),
]


def rows(text):
    """The cells of every body row of the markdown tables in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith(("| Dataset", "|--", "|:-"))]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def header(text):
    line = next(line for line in text.splitlines() if line.startswith("| Dataset"))
    return [c.strip() for c in line.strip("|").split("|")]


def row(text, bits):
    return next(r for r in rows(text) if r[2] == bits)


class TestData:
    def test_adadfq_table2_facts(self):
        table = published.read(ADADFQ)
        assert len(table) == 86 and table["source"].unique().tolist() == ["AdaDFQ CVPR'23 Tab. 2"]
        entry = table.set_index(published.ENTRY)
        assert entry.loc[("cifar10", "resnet20", 4, 4, "adadfq"), "top1"] == 92.31
        assert entry.loc[("imagenet", "mobilenetv2", 4, 4, "zaq"), "top1"] == 0.10
        assert entry.loc[("cifar100", "resnet20", 3, 3, "arc-ait"), "label"] == "ARC+AIT"
        assert entry.loc[("imagenet", "resnet50", 5, 5, "gdfq"), "fp_top1"] == 77.73
        reruns = set(table.loc[table["rerun"], ["dataset", "model", "w_bits", "method"]].itertuples(index=False, name=None))
        assert reruns == {("cifar10", "resnet20", 3, "gdfq"), ("cifar10", "resnet20", 3, "qimera"), ("cifar100", "resnet20", 3, "gdfq"),
                          ("cifar100", "resnet20", 3, "qimera"), ("imagenet", "resnet18", 3, "gdfq"), ("imagenet", "resnet18", 3, "qimera"),
                          ("imagenet", "mobilenetv2", 3, "gdfq"), ("imagenet", "resnet50", 3, "gdfq")}
        assert table["top1_std"].isna().all()

    def test_every_suite_with_published_numbers_covers_its_rows_and_bits(self):
        reg = load_registry()
        for name in ("cifar10", "cifar100", "imagenet", "imagenet-vit"):
            suite = reg.suite(name).info
            numbers = published.load(suite.published)
            for dataset, model in suite.rows:
                bits = numbers.loc[(numbers["dataset"] == dataset) & (numbers["model"] == model), ["w_bits", "a_bits"]]
                assert set(parse_bits(",".join(suite.bits))) <= set(bits.itertuples(index=False, name=None)), (name, model)

    def test_psaqvit_readme(self):
        table = published.read("dfqbench_suites:published/psaqvit_eccv2022_readme.csv").set_index(published.ENTRY)
        assert table.loc[("imagenet", "swin-small", 4, 8, "psaqvit"), "top1"] == 75.14
        assert table.loc[("imagenet", "deit-base", 8, 8, "psaqvit"), "fp_top1"] == 81.85
        assert len(table) == 10

    def test_the_first_source_wins_in_the_table(self):
        both = published.load(load_registry().suite("cifar100").info.published)
        gdfq = both[(both["method"] == "gdfq") & (both["dataset"] == "cifar100") & (both["w_bits"] == 4)]
        assert sorted(gdfq["top1"]) == [63.58, 63.75]
        (first,) = published.primary(both).query("method == 'gdfq' and dataset == 'cifar100' and w_bits == 4")["top1"]
        assert first == 63.75  # AdaDFQ Table 2 comes first in the suite's list

    def test_a_file_without_a_column_is_refused(self, tmp_path, monkeypatch):
        from dfqbench.errors import DfqError

        package = tmp_path / "pubpkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "t.csv").write_text("# source\ndataset,model,w_bits,a_bits,method,top1\ncifar10,resnet20,4,4,gdfq,1.0\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        with pytest.raises(DfqError, match="lack the column\\(s\\) label, top1_std, fp_top1, rerun, source"):
            published.read("pubpkg:t.csv")


class TestTable:
    @pytest.fixture
    def cifar10_numbers(self):
        return published.load(load_registry().suite("cifar10").info.published)

    def test_entries_show_published_value_and_difference(self, cifar10_numbers):
        summary = tables.with_published(tables.summarize(tables.frame(CIFAR10)), cifar10_numbers)
        text = tables.markdown(summary)
        assert header(text) == ["Dataset", "Model (FP top-1)", "Bits", "Noise", "GDFQ", "AdaDFQ"]
        assert row(text, "3w3a") == [
            "CIFAR-10", "ResNet-20 (93.50; pub 93.89)", "3w3a", "–", "**74.00 (pub 75.11‡, −1.1)**", "–"]
        assert row(text, "4w4a") == [
            "CIFAR-10", "ResNet-20 (93.50; pub 93.89)", "4w4a", "50.00", "**91.02 ± 0.42 (pub 90.11, +0.9)**", "failed (pub 92.31)"]
        assert "(pub P, ±D): the published top-1 (AdaDFQ CVPR'23 Tab. 2) and ours − published" in text
        assert "‡ re-run by the citing paper's authors" in text
        assert "not a reproduction check" not in text  # budget paper

    def test_a_reduced_budget_is_flagged(self, cifar10_numbers):
        smoke = [record("gdfq", "GDFQ", 0, 80.0, budget="smoke")]
        text = tables.markdown(tables.with_published(tables.summarize(tables.frame(smoke)), cifar10_numbers))
        assert "(pub 90.11, −10.1)" in text
        assert "Budget `smoke` is not the papers' schedule" in text

    def test_csv_has_the_published_columns(self, cifar10_numbers, tmp_path):
        tables.write(CIFAR10, tmp_path, cifar10_numbers)
        csv = pd.read_csv(tmp_path / "table.csv").set_index(["method", "w_bits"])
        assert csv.loc[("gdfq", 4), "pub_top1"] == 90.11
        assert csv.loc[("gdfq", 4), "delta"] == pytest.approx(0.91)
        assert csv.loc[("gdfq", 3), "pub_rerun"]
        assert pd.isna(csv.loc[("noise", 4), "pub_top1"])

    def test_without_published_numbers_the_table_is_unchanged(self, tmp_path):
        text = tables.markdown(tables.with_published(tables.summarize(tables.frame(CIFAR10)), published.load(())))
        assert "pub" not in text
        assert row(text, "3w3a") == ["CIFAR-10", "ResNet-20 (93.50)", "3w3a", "–", "**74.00**", "–"]


class TestCompare:
    @pytest.fixture
    def results(self, tmp_path):
        folder = tmp_path / "cifar100"
        folder.mkdir()
        recs = [record("gdfq", "GDFQ", s, v, dataset="cifar100", fp=70.1) for s, v in ((0, 64.0), (1, 64.5))]
        recs.append(record("noise", "Noise", 0, 20.0, dataset="cifar100", fp=70.1, year=0))
        (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        return tmp_path

    def test_compare_view_lists_ours_and_every_source(self, cli, results):
        res = cli("table", "--results", str(results), "--compare", "published")
        assert res.code == 0, res.err
        text = (results / "cifar100" / "compare.md").read_text()
        assert text in res.out
        assert text.startswith("### Ours vs published · suite `cifar100` · budget `paper` · quantizer `gdfq`")
        lines = rows(text)
        # ours first; then the others in the order of the sources' columns, each method's sources together
        assert [r[3] for r in lines] == ["Noise", "GDFQ", "GDFQ", "ZAQ (not run)", "IntraQ (not run)", "ARC+AIT (not run)", "ARC (not run)",
                                        "Qimera (not run)", "Qimera (not run)", "AdaDFQ (not run)"]
        assert lines[0] == ["CIFAR-100", "ResNet-20", "4w4a", "Noise", "20.00", "70.10", "–", "–", "–", "–"]
        assert lines[1] == ["CIFAR-100", "ResNet-20", "4w4a", "GDFQ", "64.25 ± 0.35", "70.10", "63.75", "70.33", "+0.50", "AdaDFQ CVPR'23 Tab. 2"]
        assert lines[2] == ["CIFAR-100", "ResNet-20", "4w4a", "GDFQ", "64.25 ± 0.35", "70.10", "63.58 ± 0.23", "70.33", "+0.67", "GDFQ README"]
        assert lines[-1] == ["CIFAR-100", "ResNet-20", "4w4a", "AdaDFQ (not run)", "–", "–", "66.81", "70.33", "–", "AdaDFQ CVPR'23 Tab. 2"]
        assert {r[2] for r in lines} == {"4w4a"}  # only the rows we ran
        csv = pd.read_csv(results / "cifar100" / "compare.csv")
        assert len(csv) == 10 and csv["ours"].sum() == 3
        assert (results / "cifar100" / "table.md").read_text().count("(pub 63.75, +0.5)") == 1

    def test_a_method_run_only_as_a_variant_is_not_called_not_run(self, cli, results):
        variant = record("gdfq", "GDFQ", 0, 60.0, dataset="cifar100", fp=70.1)
        variant["key"] += "-variant"
        variant["cell"]["overrides"] = {"gdfq": {"batch_size": 2}}
        noise = record("noise", "Noise", 0, 20.0, dataset="cifar100", fp=70.1, bits=5, year=0)  # a row where GDFQ did not run
        (results / "cifar100" / "records.jsonl").write_text(json.dumps(variant) + "\n" + json.dumps(noise) + "\n")
        assert cli("table", "--results", str(results), "--compare", "published").code == 0
        lines = rows((results / "cifar100" / "compare.md").read_text())
        four = [r[3] for r in lines if r[2] == "4w4a"]
        assert four[0] == "GDFQ (batch_size=2)"
        assert four.count("GDFQ (run only with --set changes)") == 2 and "GDFQ (not run)" not in four  # two sources
        assert "Qimera (not run)" in four
        assert "GDFQ (not run)" in [r[3] for r in lines if r[2] == "5w5a"]

    def test_compare_needs_a_suite_with_published_numbers(self, cli, tmp_path):
        folder = tmp_path / "digits"
        folder.mkdir()
        rec = record("noise", "Noise", 0, 50.0)
        rec["cell"].update(suite="digits", dataset="digits")
        (folder / "records.jsonl").write_text(json.dumps(rec) + "\n")
        for suite in (("--suite", "digits"), ()):  # named, or the only suite there: nothing to compare is an error
            res = cli("table", "--results", str(tmp_path), *suite, "--compare", "published")
            assert res.code == 2
            assert res.err.strip().splitlines()[-1] == (
                "dfqbench: error: suite 'digits' has no published numbers; suites with published numbers: cifar10, cifar100, imagenet, imagenet-vit")

    def test_unknown_compare_target(self, cli, results):
        res = cli("table", "--results", str(results), "--compare", "paper")
        assert res.code == 2 and "Invalid value for '--compare': 'paper' is not 'published'" in res.err


def test_a_suite_may_name_one_file_bare():
    from dfqbench.api import SuiteInfo

    assert SuiteInfo("s", "d", rows=(), published=ADADFQ).published == (ADADFQ,)
    assert SuiteInfo("s", "d", rows=(), published=None).published == ()

"""The embedded digits suite: a fixed split, its constants, deterministic shipped teachers."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dfqbench.api import DatasetInfo, load_object
from dfqbench.data import digits
from dfqbench.evaluate import evaluate
from dfqbench.models.cifar_resnet import CIFARResNet
from dfqbench.registry import load_registry
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.train import Recipe, train_classifier
from dfqbench_suites import DIGITS_TEACHERS


def test_split_is_fixed_stratified_and_disjoint():
    train_x, train_y = digits.raw_split("train")
    val_x, val_y = digits.raw_split("val")
    assert (len(train_y), len(val_y)) == (1198, 599)
    assert train_x.shape[1:] == (1, 8, 8) and 0.0 <= train_x.min() and train_x.max() <= 1.0
    assert np.all(np.bincount(val_y) >= 57)
    idx = digits._split_indices()
    assert not set(idx["train"]) & set(idx["val"])


def test_normalisation_constants_are_the_training_split_statistics():
    images, _ = digits.raw_split("train")
    assert images.mean() == pytest.approx(digits.MEAN[0], abs=1e-4)
    assert images.std() == pytest.approx(digits.STD[0], abs=1e-4)
    info = load_registry().dataset("digits").info
    assert (info.mean, info.std) == (digits.MEAN, digits.STD)


@pytest.mark.parametrize("recipe", [Recipe(epochs=1, seed=3), Recipe(epochs=2, optimizer="adamw", lr=0.003, warmup_epochs=1)])
def test_training_is_deterministic(recipe):
    from dfqbench.models.cifar_resnet import CIFARResNet

    data = digits.load_split("train")
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CIFARResNet(1, 10, 8, (4, 8))
        train_classifier(model, data, recipe, background=-0.8)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def _shipped(name):
    from safetensors import safe_open

    import dfqbench_suites.digits as zoo

    with safe_open(zoo.teacher_file(name), framework="pt") as f:
        return f.metadata()


SHIPPED = [("resnet20-digits", 97.0), ("mobilenetv2-digits", 97.0), ("vit-digits", 95.0)]
SHIPPED += [(name, 97.0) for name in DIGITS_TEACHERS]


@pytest.mark.parametrize("name, floor", SHIPPED)
def test_shipped_teachers_are_the_files_they_say_and_accurate(name, floor, monkeypatch):
    """Every machine loads the same weights: those the file names, trained for today's
    architecture, recipe and split, as accurate as when they were trained."""
    import dfqbench_suites.digits as zoo
    from dfqbench.zoo.store import fingerprint, weights_sha256

    meta = _shipped(name)
    monkeypatch.setattr(zoo, "train_classifier", lambda *a, **k: pytest.fail("trained a shipped teacher"))
    model = zoo.load(name, load_registry().dataset("digits").info, ZooEnv())
    assert meta["fingerprint"] == fingerprint(zoo.spec(name))
    assert weights_sha256(model) == meta["teacher_sha256"]
    top1, _ = evaluate(model, digits.load_split("val"), torch.device("cpu"))
    assert top1 == float(meta["val_top1"]) and top1 >= floor


def test_teacher_instances_are_their_models_recipe_with_another_seed():
    """``digits-teachers`` holds other teachers of the same models: only the recipe seed
    differs, and so do the weights."""
    import dfqbench_suites.digits as zoo
    from dfqbench.zoo.store import weights_sha256

    reg = load_registry()
    assert reg.suite("digits-teachers").info.rows == tuple(("digits", name) for name in DIGITS_TEACHERS)
    assert len(DIGITS_TEACHERS) == 4
    for name, (base, k) in DIGITS_TEACHERS.items():
        assert k != zoo.RECIPES[base].seed
        assert zoo.spec(name) == {**zoo.spec(base), "recipe": {**zoo.spec(base)["recipe"], "seed": k}}
        assert reg.model(name).info.family == reg.model(base).info.family
        loaded = load_object(reg.model(name).info.loader)(reg.dataset("digits").info, ZooEnv(), {})
        assert weights_sha256(loaded) == _shipped(name)["teacher_sha256"] != _shipped(base)["teacher_sha256"]


def test_the_recipe_trains_the_shipped_weights_on_the_machine_that_trained_them():
    """On another CPU the kernels may round otherwise and end with other weights (why the
    teachers ship): the comparison is made where the file says it was trained."""
    import dfqbench_suites.digits as zoo
    from dfqbench.seeding import describe_machine
    from dfqbench.zoo.store import weights_sha256

    meta = _shipped("resnet20-digits")
    here = describe_machine(torch.device("cpu"))
    if (here["cpu"], here["cpu_capability"]) != (meta["cpu"], meta["cpu_capability"]):
        pytest.skip(f"the shipped teacher was trained on {meta['cpu']} ({meta['cpu_capability']}), this is {here['cpu']} ({here['cpu_capability']})")
    model, top1 = zoo.train("resnet20-digits")
    assert (weights_sha256(model), top1) == (meta["teacher_sha256"], float(meta["val_top1"]))


def test_digits_weights_refuse_other_datasets():
    import dfqbench_suites.digits as zoo
    from dfqbench.errors import DfqError

    other = DatasetInfo("cifar10", "CIFAR-10", 10, (3, 32, 32), (0.5,) * 3, (0.5,) * 3, "x:y")
    with pytest.raises(DfqError, match="no weights for dataset 'cifar10'"):
        zoo.load("resnet20-digits", other, ZooEnv())


def test_evaluate_counts_top1_and_top5_hits_over_batches():
    # the model returns its input rows as logits
    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 3], [0, 9, 1, 2, 3, 4, 5], [9, 0, 1, 2, 3, 4, 5]])
    labels = torch.tensor([0, 5, 1])  # a top-1 hit, a top-5 hit (rank 3), a miss (rank 7)
    model = torch.nn.Identity().train()
    top1, top5 = evaluate(model, TensorDataset(logits, labels), torch.device("cpu"), batch_size=2)
    assert (top1, top5) == (pytest.approx(100 / 3), pytest.approx(200 / 3))
    assert model.training  # the caller's mode is restored


def test_weights_digest_is_the_weights_not_the_file_or_the_object(tmp_path):
    from dfqbench.zoo.store import load_state_dict, weights_sha256

    torch.manual_seed(0)
    net = CIFARResNet(1, 10, 20, (4, 8, 16))
    sha256 = weights_sha256(net)
    assert len(sha256) == 64
    torch.save(net.state_dict(), tmp_path / "w.pt")
    reloaded = CIFARResNet(1, 10, 20, (4, 8, 16))
    reloaded.load_state_dict(load_state_dict(tmp_path / "w.pt"))
    assert weights_sha256(reloaded) == sha256
    for m in reloaded.modules():  # BN batch counters do not change the function
        if isinstance(m, torch.nn.BatchNorm2d):
            m.num_batches_tracked += 7
    assert weights_sha256(reloaded) == sha256
    with torch.no_grad():  # one weight one ulp up
        first = next(reloaded.parameters())
        first.view(-1)[0] = torch.nextafter(first.view(-1)[0], torch.tensor(float("inf")))
    assert weights_sha256(reloaded) != sha256
    reshaped = CIFARResNet(1, 10, 20, (4, 8, 16))
    reshaped.load_state_dict(net.state_dict())
    fc = [m for m in reshaped.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # the same numbers under another shape are other weights
        fc.weight.data = fc.weight.data.reshape(-1, 5).clone()
    assert weights_sha256(reshaped) != sha256


def test_a_damaged_or_stale_shipped_teacher_is_one_error(tmp_path, monkeypatch):
    import dfqbench_suites.digits as zoo
    from dfqbench.errors import DfqError

    info = load_registry().dataset("digits").info
    shipped = zoo.teacher_file("resnet20-digits")
    monkeypatch.setattr(zoo, "TEACHERS", tmp_path)
    with pytest.raises(DfqError, match=f"cannot load the shipped resnet20-digits teacher {tmp_path}/resnet20-digits.safetensors .*; reinstall dfqbench"):
        zoo.load("resnet20-digits", info, ZooEnv())
    (tmp_path / "resnet20-digits.safetensors").write_bytes(shipped.read_bytes()[:100])  # a copy cut short
    with pytest.raises(DfqError, match="cannot load the shipped resnet20-digits teacher .*; reinstall dfqbench"):
        zoo.load("resnet20-digits", info, ZooEnv())
    # the recipe changed and the file was not trained again
    monkeypatch.setitem(zoo.RECIPES, "resnet20-digits", zoo.Recipe(weight_decay=0.0, epochs=31))
    monkeypatch.setattr(zoo, "TEACHERS", shipped.parent)
    with pytest.raises(DfqError, match=r"was trained for another architecture, recipe or split \(fingerprint 43ab7305dbb7, today's [0-9a-f]{12}\); "
                                       r"train it again with tools/train_digits_teachers.py"):
        zoo.load("resnet20-digits", info, ZooEnv())

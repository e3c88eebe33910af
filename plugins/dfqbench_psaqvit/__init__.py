"""PSAQ-ViT and the PSAQ-ViT V2 reconstruction (a plugin like any other; imports no torch)."""

from dfqbench.api import VIT, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="psaqvit",
            display_name="PSAQ-ViT",
            paper="Li et al., Patch Similarity Aware Data-Free Quantization for Vision Transformers, ECCV 2022",
            families=(VIT,),
            impl="dfqbench_psaqvit.v1:PSAQViT",
            year=2022,
            notes="V1 as its code does it: patch-similarity entropy images, one calibration forward",
        ),
        MethodInfo(
            name="psaqvit-v2",
            display_name="PSAQ-ViT V2 (recon.)",
            paper="Li et al., PSAQ-ViT V2: Toward Accurate and General Data-Free Quantization for Vision "
            "Transformers, TNNLS 2023 — reconstruction from the abstract; no official code or paper body; "
            "hyper-parameters invented",
            families=(VIT,),
            impl="dfqbench_psaqvit.v2:PSAQViTV2",
            year=2023,
            notes="reconstruction: samples and STE student evolve in alternation under the FP teacher",
        ),
    ]

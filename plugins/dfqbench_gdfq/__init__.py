"""GDFQ (Xu et al., ECCV 2020) as a dfqbench plugin."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="gdfq",
            display_name="GDFQ",
            paper="Xu et al., Generative Low-bitwidth Data Free Quantization, ECCV 2020",
            families=(CNN,),
            impl="dfqbench_gdfq.method:GDFQ",
            year=2020,
        )
    ]

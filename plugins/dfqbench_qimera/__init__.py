"""Qimera (Choi et al., NeurIPS 2021) as a dfqbench plugin."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="qimera",
            display_name="Qimera",
            paper="Choi et al., Qimera: Data-free Quantization with Synthetic Boundary Supporting Samples, NeurIPS 2021",
            families=(CNN,),
            impl="dfqbench_qimera.method:Qimera",
            year=2021,
        )
    ]

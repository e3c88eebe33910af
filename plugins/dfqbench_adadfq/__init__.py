"""AdaDFQ (Qian et al., CVPR 2023) as a dfqbench plugin."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="adadfq",
            display_name="AdaDFQ",
            paper="Qian et al., Adaptive Data-Free Quantization, CVPR 2023",
            families=(CNN,),
            impl="dfqbench_adadfq.method:AdaDFQ",
            year=2023,
        )
    ]

"""ZeroQ (Cai et al., CVPR 2020) as a dfqbench plugin."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="zeroq",
            display_name="ZeroQ",
            paper="Cai et al., ZeroQ: A Novel Zero Shot Quantization Framework, CVPR 2020",
            families=(CNN,),
            impl="dfqbench_zeroq.method:ZeroQ",
            year=2020,
        )
    ]

"""ZAQ (Liu et al., CVPR 2021) as a dfqbench plugin."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="zaq",
            display_name="ZAQ",
            paper="Liu et al., Zero-shot Adversarial Quantization, CVPR 2021",
            families=(CNN,),
            impl="dfqbench_zaq.method:ZAQ",
            year=2021,
        )
    ]

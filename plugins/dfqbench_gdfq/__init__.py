"""GDFQ (Xu et al., ECCV 2020) as a dfqbench plugin, with its real-data reference."""

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
        ),
        MethodInfo(
            name="real-kd",
            display_name="Real-KD",
            paper="reference: GDFQ's quantized-model training (loss, schedule, budget) on real training images",
            families=(CNN,),
            impl="dfqbench_gdfq.real:RealKD",
            data_free=False,
        ),
    ]

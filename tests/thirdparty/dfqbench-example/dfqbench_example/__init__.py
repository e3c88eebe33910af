"""A third-party dfqbench plugin: declares one method; imports nothing heavy."""

from dfqbench.api import CNN, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="uniform-calib",
            display_name="Uniform-calib",
            paper="example plugin: ranges calibrated on uniform noise in the valid pixel range",
            families=(CNN,),
            impl="dfqbench_example.method:UniformCalibration",
            year=2026,
        )
    ]

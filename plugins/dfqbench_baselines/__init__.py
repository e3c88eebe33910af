"""Calibration-only baselines: the floor (``noise``) and a real-data reference."""

from dfqbench.api import CNN, VIT, MethodInfo, hookimpl


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(
            name="noise",
            display_name="Noise",
            paper="baseline: activation ranges calibrated on Gaussian noise, no training",
            families=(CNN, VIT),
            impl="dfqbench_baselines.calibration:NoiseCalibration",
        ),
        MethodInfo(
            name="real-calib",
            display_name="Real-calib",
            paper="reference: ranges calibrated on real training images",
            families=(CNN, VIT),
            impl="dfqbench_baselines.calibration:RealCalibration",
            data_free=False,
        ),
    ]

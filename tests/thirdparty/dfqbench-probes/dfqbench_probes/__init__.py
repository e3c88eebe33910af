"""Test-only methods that misbehave on purpose, to prove the harness isolates them."""

from dfqbench.api import CNN, MethodInfo, hookimpl

PROBES = {
    "probe-fail": ("Fail", "raises ValueError with a message of two lines"),
    "probe-nan": ("NaN", "logs a NaN loss"),
    "probe-oom": ("OutOfMemory", "raises torch.OutOfMemoryError"),
    "probe-interrupt": ("Interrupt", "raises KeyboardInterrupt at 4 bits when DFQBENCH_PROBE_INTERRUPT is set"),
    "probe-crash": ("Crash", "ends its process at 4 bits when DFQBENCH_PROBE_CRASH is set, as the OOM killer would"),
    "probe-slow": ("Slow", "calibrates on noise, slowly"),
    "probe-spy": ("Spy", "records everything it receives"),
    "probe-greedy": ("Greedy", "a data-free method that asks for real data"),
    "probe-sneaky": ("Sneaky", "a data-free method that calls the suite's loader for the validation split itself"),
    "probe-leave-open": ("LeaveOpen", "returns with activation ranges still updating"),
    "probe-uncalibrated": ("Uncalibrated", "returns without calibrating"),
    "probe-joint": ("Joint", "trains its bit-widths jointly; the 4-bit model diverges"),
}


@hookimpl
def dfqbench_methods():
    return [
        MethodInfo(name, f"Probe-{cls}", f"probe: {what}", (CNN,), f"dfqbench_probes.methods:{cls}")
        for name, (cls, what) in PROBES.items()
    ]

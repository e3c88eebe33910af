"""Where full-precision teachers come from: cached, checked, loaded safely."""

from dfqbench.zoo.env import ZooEnv, default_cache_dir

__all__ = ["ZooEnv", "default_cache_dir"]

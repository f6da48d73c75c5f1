"""finscale: architectural hyper-parameter search for transformers on daily market data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finscale")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Experiment", "__version__", "experiments", "load_experiment"]

_API = {"Experiment", "experiments", "load_experiment"}


def __getattr__(name: str) -> object:
    """The notebook API (`finscale.experiment`), imported when first used: `import finscale`
    stays light for the CLI."""
    if name in _API:
        from finscale import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'finscale' has no attribute {name!r}")

"""The package's layers (docs/library.md): the neuron library imports neither training and measurement nor
the pipeline helpers; training and measurement do not import the pipeline helpers."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bidl"

LIBRARY = (
    "__init__", "functional", "neurons", "layers", "state", "ann", "plasticity", "stream", "evaluation",
    "models", "export", "errors", "io", "runtime",
)  # fmt: skip
TRAINING = ("training", "distributed", "colearning", "cost", "latency", "stats", "probe", "data")
PIPELINE = ("pipeline",)


def _top(path: Path) -> str:
    """The first component under ``bidl/`` of a module file: ``bidl/models/dvs128.py`` -> ``models``."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported(path: Path, source: str | None = None) -> set[str]:
    """The first components under ``bidl`` of every module that the module file ``path`` (its text, or
    ``source``) imports, absolutely or relatively."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # e.g. ('bidl', 'models')
    found = set()
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        names: list[tuple[str, ...]] = []
        if isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                base = package[: len(package) - node.level + 1] + base
            names = [base + (alias.name,) if len(base) == 1 else base for alias in node.names]
        for name in names:
            if len(name) >= 2 and name[0] == "bidl":
                found.add(name[1])
    return found


def _files(layer: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if _top(p) in layer)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [(LIBRARY, TRAINING + PIPELINE), (TRAINING, PIPELINE)],
    ids=["library", "training"],
)
def test_a_layer_imports_nothing_of_the_layers_below_it(layer, forbidden):
    files = _files(layer)
    assert files
    wrong = {str(p.relative_to(PACKAGE)): sorted(_imported(p) & set(forbidden)) for p in files}
    assert not {k: v for k, v in wrong.items() if v}


def test_every_module_belongs_to_one_layer():
    layers = LIBRARY + TRAINING + PIPELINE
    assert len(set(layers)) == len(layers)
    assert {_top(p) for p in PACKAGE.rglob("*.py")} <= set(layers)


def test_the_import_finder_sees_relative_and_absolute_imports():
    """The check can fail: a library module importing training code is found, in each import form."""
    module = PACKAGE / "models" / "dvs128.py"
    for form in (
        "from ..training import fit",
        "from .. import training",
        "import bidl.cost",
        "from bidl import stats",
    ):
        assert _imported(module, form + "\n") & set(TRAINING), form
    assert not _imported(module, "from ..layers import ConvLIF\nfrom . import registry\n") & set(TRAINING)

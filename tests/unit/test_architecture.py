"""The folder tree is the architecture: data flows downward, declarations need no Spark, transforms do no I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lakehouse"

# Floors, lowest first. A module may import modules of its own floor or of a lower one, never of a higher one.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("declarations", ("_version", "errors", "settings", "contracts", "rules", "report")),
    ("adapters", ("adapters", "bookkeeping", "services")),
    ("layers", ("bronze", "silver", "gold", "quality", "sample", "runreport", "maintenance")),
    ("run", ("steps", "pipeline", "health")),
    ("entry points", ("cli", "__main__", "__init__")),
)
PURE = ("bronze/transforms.py", "silver/transforms.py", "silver/validation.py")
ACTIONS = frozenset({"collect", "count", "first", "take", "head", "show", "toPandas", "toLocalIterator", "save"})


def module_name(path: Path) -> str:
    return ".".join(("lakehouse", *path.relative_to(PACKAGE).with_suffix("").parts))


def floor_of(module: str) -> int:
    """The floor of ``lakehouse.<top>...`` (the package itself is an entry point)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, (_, tops) in enumerate(FLOORS):
        if top in tops:
            return index
    raise AssertionError(f"{module} is on no floor: add its folder or module to FLOORS")


def imported_modules(path: Path) -> set[str]:
    """Every ``lakehouse`` module the file imports, at module level or inside functions, typing-only included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lakehouse"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if (PACKAGE / alias.name).exists())
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lakehouse"))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_one_on_a_higher_floor(path: Path) -> None:
    here = module_name(path)
    if path.name == "__init__.py" and path.parent != PACKAGE:
        here = here.removesuffix(".__init__")  # a subpackage's __init__ belongs to its folder's floor
    upward = [m for m in imported_modules(path) if floor_of(m) > floor_of(here)]
    assert upward == [], f"{here} ({FLOORS[floor_of(here)][0]}) imports from above: {upward}"


def test_every_folder_and_module_is_on_a_floor() -> None:
    for path in MODULES:
        floor_of(module_name(path).removesuffix(".__init__"))


@pytest.mark.parametrize("relative", PURE)
def test_pure_transform_modules_run_no_action_and_do_no_io(relative: str) -> None:
    tree = ast.parse((PACKAGE / relative).read_text(encoding="utf-8"))
    calls = {  # method calls, leaving out pyspark.sql.functions (F.count is an aggregate expression, not an action)
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "F")
    }
    assert calls & ACTIONS == set(), f"{relative} runs Spark actions: {calls & ACTIONS}"
    imports = imported_modules(PACKAGE / relative)
    io = [m for m in imports if floor_of(m) > 0 and not m.startswith(("lakehouse.silver", "lakehouse.bronze"))]
    assert io == [], f"{relative} imports I/O modules: {io}"


@pytest.mark.parametrize("module", ["lakehouse", "lakehouse.contracts", "lakehouse.rules", "lakehouse.report"])
def test_declarations_and_the_package_import_without_spark_or_dbt(module: str) -> None:
    probe = (
        f"import sys, {module}; heavy = sorted(m for m in ('pyspark', 'dbt', 'soda', 'psycopg2') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loads {out}"


# Spark Connect sessions have no JVM gateway, SparkContext or RDDs. The two JVM uses left (pointing the Scala console
# at stderr while Delta's VACUUM prints; naming the stages a thread starts, which PySpark does for one thread at a
# time) are no-ops on a Connect session, and each lives in its function alone.
JVM_ONLY = frozenset({"_jvm", "_jsc", "_jdf", "_jconf", "rdd", "sparkContext"})
JVM_ALLOWED = {("adapters/lake_upkeep.py", "_console_on_stderr"), ("adapters/spark.py", "call_site")}


def _jvm_uses(path: Path) -> set[tuple[str, str, int]]:
    """``(function, attribute, line)`` of every JVM-only attribute the module reads, with the innermost enclosing
    function's name (``<module>`` outside one)."""
    found: set[tuple[str, str, int]] = set()

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Attribute) and child.attr in JVM_ONLY:
                found.add((name, child.attr, child.lineno))
            visit(child, name)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_code_needs_no_jvm_so_it_runs_on_spark_connect(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    uses = sorted(u for u in _jvm_uses(path) if (relative, u[0]) not in JVM_ALLOWED)
    assert uses == [], f"{relative} reaches into the JVM (no such thing on Spark Connect): {uses}"


@pytest.mark.parametrize(("relative", "function"), sorted(JVM_ALLOWED))
def test_each_jvm_use_left_is_skipped_on_a_connect_session(relative: str, function: str) -> None:
    source = ast.get_source_segment(
        text := (PACKAGE / relative).read_text(encoding="utf-8"),
        next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == function),
    )
    assert source is not None
    assert "is_connect(spark)" in source, f"{function} must do nothing on Spark Connect"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_delta_is_reached_through_sql_so_a_connect_server_needs_only_deltas_sql_extension(path: Path) -> None:
    """Delta's Python ``DeltaTable`` API needs, on Spark Connect, the Delta Connect plugin on the server; its SQL
    (``describe history``, ``optimize``, ``vacuum``) and Spark's own ``mergeInto`` need only Delta's SQL extension."""
    assert imported_delta(path) == set(), f"{path.relative_to(PACKAGE)} uses Delta's Python API"


def imported_delta(path: Path) -> set[str]:
    return {
        node.module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "delta"
    }

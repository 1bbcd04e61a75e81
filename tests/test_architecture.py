"""The package's layout is its architecture, and stays so.

The folders of `checkpoint_sql` are layers, from the bottom: `errors`, `dialects` (every
engine difference), `core` (engines, transactions, calls), then `saver` and `stores`
side by side (neither knows the other), `retry` (which wraps the saver), `admin` (the
command and the tools only it uses), and on top the few modules users import from. A
module may import its own layer and those below it, never one above: the saver cannot
come to depend on the command, the plumbing on the saver. `rich` is the command's
alone (an optional extra), and a name with a leading underscore is private to the
module that defines it. The checks read the source (`ast`), so an import inside a
function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "checkpoint_sql"

RANK = {"errors": 0, "dialects": 1, "core": 2, "saver": 3, "stores": 3, "retry": 4, "admin": 5, "top": 6}
"""Each layer's place, bottom to top; `saver` and `stores` share theirs and may not
import each other."""
TOP_MODULES = {"__init__", "__main__", "errors", "server", "storage"}
"""The handful of modules at the package's root: what users import or run."""
NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make", "_field_defaults"}
"""Public methods of named tuples, underscored only to stay out of the fields' way."""


@dataclass(frozen=True)
class Module:
    name: str
    """Dotted, e.g. ``checkpoint_sql.saver.codec``."""
    path: Path
    tree: ast.Module

    @property
    def layer(self) -> str:
        return layer_of(self.name)


def layer_of(dotted: str) -> str:
    parts = dotted.split(".")
    if len(parts) == 1:
        return "top"
    head = parts[1]
    if head == "migrations":  # Alembic's scripts belong to the runner in core
        return "core"
    return head if head in RANK else "top"


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append(Module(name, path, ast.parse(path.read_text(), str(path))))
    return found


def imports(module: Module) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for every import of the package."""
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "checkpoint_sql"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "checkpoint_sql":
                found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]))
    return found


def test_the_package_root_holds_only_what_users_import_or_run() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == TOP_MODULES


def test_every_folder_of_the_package_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {"dialects", "core", "saver", "stores", "retry", "admin", "migrations"}


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for module in modules():
        for line, target, names in imports(module):
            assert not target.startswith("."), f"{module.path}:{line}: relative import; name the module"
            # `from checkpoint_sql import x` takes x from the facade unless x is a package
            targets = (
                [f"{target}.{n}" if (PACKAGE / n).is_dir() else target for n in names]
                if target == "checkpoint_sql"
                else [target]
            )
            for t in targets:
                mine, theirs = module.layer, layer_of(t)
                if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
                    wrong.append(f"{module.path.relative_to(PACKAGE.parent)}:{line}: {mine} imports {t} ({theirs})")
    assert not wrong, "imports running up (or across) the layers:\n" + "\n".join(wrong)


def test_rich_is_imported_by_the_command_only() -> None:
    wrong = []
    for module in modules():
        if module.layer == "admin":
            continue
        for node in ast.walk(module.tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            wrong += [
                f"{module.path.relative_to(PACKAGE.parent)}:{node.lineno}" for n in names if n.split(".")[0] == "rich"
            ]
    assert not wrong, "rich outside checkpoint_sql/admin: " + ", ".join(wrong)


def _defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines or assigns, at any depth (attributes included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)  # __slots__ entries
    return names


def private_uses(module: Module) -> list[str]:
    """Private names this module takes from another: imported by name, or read as an
    attribute of something other than `self`/`cls` (a class may use what its bases
    keep for their subclasses) that nothing in this module defines."""
    here = _defined_names(module.tree)
    found = []
    for line, target, names in imports(module):
        found += [f"{line}: from {target} import {n}" for n in names if n.startswith("_") and not n.startswith("__")]
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in here
            and node.attr not in NAMEDTUPLE_API
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_a_private_name_of_another() -> None:
    wrong = [f"{m.path.relative_to(PACKAGE.parent)}:{use}" for m in modules() for use in private_uses(m)]
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "source",
    [
        "from checkpoint_sql.saver.sql_saver import _strings\n",
        "from checkpoint_sql.saver import sql_saver\nsql_saver._strings([])\n",
        "def f(saver):\n    return saver._parts\n",
    ],
)
def test_the_private_name_check_catches_each_way_of_reaching_in(source: str) -> None:
    module = Module("checkpoint_sql.admin.example", PACKAGE / "admin" / "example.py", ast.parse(source))
    assert private_uses(module)


def test_the_layer_check_catches_an_import_from_above() -> None:
    for line, target, _ in imports(Module("x", PACKAGE, ast.parse("def f():\n    import checkpoint_sql.admin.cli\n"))):
        assert (line, target) == (2, "checkpoint_sql.admin.cli")
        assert RANK[layer_of(target)] > RANK[layer_of("checkpoint_sql.core.calls")]


def test_the_library_imports_without_rich_and_the_command_says_how_to_get_it(tmp_path: Path) -> None:
    """A process where `rich` cannot be imported: the library and its stores work, and
    the command fails with one line naming the extra to install."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        textwrap.dedent(
            """
            import importlib.abc, sys

            class NoRich(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name == "rich" or name.startswith("rich."):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, NoRich())
            """
        )
    )
    env = {"PYTHONPATH": f"{tmp_path}:{PACKAGE.parent}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    library = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, checkpoint_sql\n"
            "s = checkpoint_sql.SQLSaver('sqlite://'); s.setup(); s.close()\n"
            "assert not any(m == 'rich' or m.startswith('rich.') for m in sys.modules)\n",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert library.returncode == 0, library.stderr
    command = subprocess.run(
        [sys.executable, "-m", "checkpoint_sql", "threads"], env=env, capture_output=True, text=True
    )
    assert command.returncode == 1
    assert command.stdout == ""
    assert command.stderr.strip().splitlines() == [
        'checkpoint-sql: the command needs rich, which is not installed: pip install "checkpoint-sql[cli]"'
    ]
